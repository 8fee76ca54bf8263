-- KEYS: stream, leases, id mark. ARGV: group, entry, count, retention (s), prefix.
local retention = int_arg(ARGV[4], 1, MAX_MS / 1000)
if not retention then return redis.error_reply('ERR complete: retention out of range') end
if not held(KEYS[1], ARGV[1], ARGV[2], ARGV[3]) then return 0 end
local P = ARGV[5]
local fields = entry_fields(KEYS[1], ARGV[2])
local now = now_ms()
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('SET', KEYS[3], '1', 'EX', int(retention))
local id = fields and ensure_record(P, fields, ARGV[2], 's', 'running')
if id then
  attempt_ended(P, id, now, 'ok', nil)
  move(P, id, 'done', {done = int(now), e = false, q = false, next = false})
  redis.call('ZADD', P .. 'done-at', int(now), id)
end
return 1
