-- KEYS: stream, leases, id mark. ARGV: group, entry, count, retention (s), prefix, outcome
-- ('ok', or 'stale' for complete_stale).
-- A keyed job's key has its newest done occurred-at raised in the same step (not when stale:
-- the newest is newer), is freed, and wakes its next job.
local retention = int_arg(ARGV[4], 1, MAX_MS / 1000)
if not retention then return redis.error_reply('ERR complete: retention out of range') end
local outcome = ARGV[6] or 'ok'
if outcome ~= 'ok' and outcome ~= 'stale' then
  return redis.error_reply('ERR complete: outcome is ok or stale')
end
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
  attempt_ended(P, id, now, outcome, nil)
  move(P, id, 'done', {done = int(now), e = false, q = false, next = false})
  redis.call('ZADD', P .. 'done-at', int(now), id)
end
local k = fields and field(fields, 'ok')
local oat = fields and tonumber(field(fields, 'oat'))
if k and oat and outcome == 'ok' then
  local newest = tonumber(redis.call('HGET', P .. 'k:newest', k))
  if not newest or oat > newest then redis.call('HSET', P .. 'k:newest', k, int(oat)) end
  redis.call('ZADD', P .. 'k:touched', int(now), k)
end
key_settled(P, KEYS[1], ARGV[2], fields, true)
return 1
