-- KEYS: stream, leases, dead, dead index, id mark. ARGV: group, entry, count, error, prefix.
if not held(KEYS[1], ARGV[1], ARGV[2], ARGV[3]) then return 0 end
local P = ARGV[5]
local fields = entry_fields(KEYS[1], ARGV[2])
local id = fields and field(fields, 'id')
local died = int(now_ms())
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[2])
-- An entry without its id cannot be indexed, shown or replayed: dropped, not half-buried.
if not id then
  redis.log(redis.LOG_WARNING, 'agentsync-webhooks: dropped ' .. ARGV[2] .. ' of ' .. KEYS[1] ..
    ' instead of burying it: it has no webhook id')
  return 0
end
local attempts = (tonumber(field(fields, 'a')) or 0) + tonumber(ARGV[3])
local did = redis.call('XADD', KEYS[3], '*',
  unpack(with(fields, {a = int(attempts), err = ARGV[4], died = died})))
redis.call('HSET', KEYS[4], id, did)
redis.call('PERSIST', KEYS[5])
ensure_record(P, fields, ARGV[2], 's', 'running')
attempt_ended(P, id, tonumber(died), 'dead', ARGV[4])
move(P, id, 'dead', {err = ARGV[4], died = died, e = did, q = 'd', next = false})
key_settled(P, KEYS[1], ARGV[2], fields, true)
return 1
