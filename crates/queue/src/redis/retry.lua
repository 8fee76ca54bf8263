-- KEYS: stream, leases, scheduled, due. ARGV: group, entry, count, delay (ms), error, prefix.
local delay = int_arg(ARGV[4], 0, MAX_MS)
if not delay then return redis.error_reply('ERR retry: delay out of range') end
if not held(KEYS[1], ARGV[1], ARGV[2], ARGV[3]) then return 0 end
local P = ARGV[6]
local now = now_ms()
local due = int(now + delay)
local fields = entry_fields(KEYS[1], ARGV[2])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[2])
if not fields then return 0 end
local attempts = (tonumber(field(fields, 'a')) or 0) + tonumber(ARGV[3])
local sid = redis.call('XADD', KEYS[3], '*',
  unpack(with(fields, {a = int(attempts), err = ARGV[5]})))
redis.call('ZADD', KEYS[4], due, sid)
local id = ensure_record(P, fields, ARGV[2], 's', 'running')
if id then
  attempt_ended(P, id, now, 'retry', ARGV[5])
  move(P, id, 'retrying', {err = ARGV[5], next = due, e = sid, q = 'r'})
end
-- A keyed job stays its key's head while it retries: the key is freed, the rest wait for it.
key_settled(P, KEYS[1], ARGV[2], fields, false)
return 1
