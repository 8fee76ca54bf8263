-- KEYS: stream, dead, dead index, id mark. ARGV: webhook id.
local did = redis.call('HGET', KEYS[3], ARGV[1])
if not did then return 0 end
local fields = entry_fields(KEYS[2], did)
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('XDEL', KEYS[2], did)
if not fields then return 0 end
redis.call('XADD', KEYS[1], '*', unpack(with(fields, {a = '0', err = false, died = false})))
redis.call('SET', KEYS[4], '1')
return 1
