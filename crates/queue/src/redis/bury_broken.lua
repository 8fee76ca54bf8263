-- KEYS: stream, leases, dead, dead index, quarantine.
-- ARGV: group, entry, count, reason, prefix, attempts, then the mended fields (name, value,
-- ...) of the dead letter, or none when the entry is too broken to be one.
-- The claimed entry `entry`, whose fields do not decode, out of the pending list: buried as a
-- dead letter with the mended fields, its record rebuilt from them (its history kept) and
-- dead with `reason`; or, without mended fields, kept in the quarantine (its fields as
-- `f:<name>`, with `entry`, `reason`, `at`) and its record, if any, dropped, its id free for a
-- resend. Either way its ordering key is released and the key's next job woken.
-- 1 buried, 2 quarantined, 0 no longer held under `count`.
local stream, leases, dead, dead_index, quarantine = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local group, entry, count, reason, P = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if not held(stream, group, entry, count) then return 0 end
local raw = entry_fields(stream, entry) or {}
local now = int(now_ms())
redis.call('XACK', stream, group, entry)
redis.call('XDEL', stream, entry)
redis.call('ZREM', leases, entry)
local raw_id = field(raw, 'id')
local outcome
if #ARGV > 6 then
  local fields = {}
  for i = 7, #ARGV do fields[#fields + 1] = ARGV[i] end
  local id = field(fields, 'id')
  local attempts = int((tonumber(ARGV[6]) or 0) + tonumber(count))
  local did = redis.call('XADD', dead, '*',
    unpack(with(fields, {a = attempts, err = reason, died = now})))
  redis.call('HSET', dead_index, id, did)
  redis.call('PERSIST', P .. 'id:' .. id)
  -- The record the claim wrote holds the entry's fields as they were: rebuilt from the mended
  -- ones, its claim and history kept.
  local key = P .. 'd:' .. id
  local kept = redis.call('HMGET', key, 'a', 'worker', 'claimed', 'seq', 'first')
  local was = redis.call('HMGET', key, 'state', 'type', 'grp')
  if was[1] then index_rem(P, id, was[1], was[2] or '', was[3] or '') end
  redis.call('ZREM', P .. 'done-at', id)
  redis.call('DEL', key)
  ensure_record(P, with(fields, {a = attempts}), entry, 's', 'running', {
    a = kept[1] or attempts, worker = kept[2] or false, claimed = kept[3] or now,
    seq = kept[4] or '0', first = kept[5] or false})
  attempt_ended(P, id, tonumber(now), 'dead', reason)
  move(P, id, 'dead', {err = reason, died = now, e = did, q = 'd', next = false})
  outcome = 1
else
  local kept = {'entry', entry, 'reason', reason, 'at', now}
  for i = 1, #raw - 1, 2 do
    kept[#kept + 1] = 'f:' .. raw[i]
    kept[#kept + 1] = raw[i + 1]
  end
  redis.call('XADD', quarantine, '*', unpack(kept))
  -- A record the claim wrote for it is this entry's only if it names the entry.
  if raw_id and redis.call('HGET', P .. 'd:' .. raw_id, 'e') == entry then
    drop_record(P, raw_id)
    redis.call('DEL', P .. 'id:' .. raw_id)
  end
  outcome = 2
end
key_settled(P, stream, entry, raw, true)
return outcome
