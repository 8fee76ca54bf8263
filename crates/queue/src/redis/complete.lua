-- KEYS: stream, leases, id mark. ARGV: group, entry, count, retention (s).
local retention = int_arg(ARGV[4], 1, MAX_MS / 1000)
if not retention then return redis.error_reply('ERR complete: retention out of range') end
if not held(KEYS[1], ARGV[1], ARGV[2], ARGV[3]) then return 0 end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('SET', KEYS[3], '1', 'EX', int(retention))
return 1
