-- KEYS: stream, leases, scheduled, due, the claim's receipts (`claim:<token>`), repair state.
-- ARGV: group, consumer, max, lease (ms), promote batch, repair batch, prefix, worker.
-- Returns {jobs, more}: jobs is {entry id, delivery count, fields, the key's newest done
-- occurred-at or ''} per claimed job; more is 1 when the read stopped at its bound of entries
-- held back (the stream may hold claimable entries past them: claim again at once), else 0.
-- Each claimed job's record is running under `worker` from now, and a re-claimed one's
-- lost attempt is in its history. A keyed entry (fields `ok`, `oat`) is taken only if its key
-- is free and it is the key's head; else it is held back (`key_park`) until the key's running
-- job settles, its attempt not counted.
local stream, leases, scheduled, due, receipts, repair =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local group, consumer = ARGV[1], ARGV[2]
local P, worker = ARGV[7], ARGV[8]
local max = int_arg(ARGV[3], 1, 100000)
local lease = int_arg(ARGV[4], 1, MAX_MS)
local promote = int_arg(ARGV[5], 1, 100000)
local repair_batch = int_arg(ARGV[6], 1, 100000)
if not (max and lease and promote and repair_batch) then
  return redis.error_reply('ERR claim: max, lease or batch out of range')
end
-- What can refuse comes before any write.
local refused = ensure_group(stream, group)
if refused then return redis.error_reply(refused) end

local now = now_ms()
local lease_end = int(now + lease)

-- At most once per lease, a page of the entries pending for a lease or more: one without a
-- lease (evicted, or a write lost) would never be re-claimed, so it gets one, expired.
local state = redis.call('HMGET', repair, 'at', 'from')
if (tonumber(state[1]) or 0) <= now then
  local from = state[2] or '-'
  local idle = redis.call('XPENDING', stream, group, 'IDLE', lease, from, '+', repair_batch)
  for _, pending in ipairs(idle) do
    if not redis.call('ZSCORE', leases, pending[1]) then
      redis.call('ZADD', leases, int(now), pending[1])
    end
  end
  local next_from = '-'
  if #idle == repair_batch then next_from = '(' .. idle[#idle][1] end
  redis.call('HSET', repair, 'at', int(now + lease), 'from', next_from)
end

-- Due retries back into the stream.
for _, sid in ipairs(redis.call('ZRANGEBYSCORE', due, '-inf', int(now), 'LIMIT', 0, promote)) do
  local fields = entry_fields(scheduled, sid)
  if fields then
    local added = redis.call('XADD', stream, '*', unpack(fields))
    local id = ensure_record(P, fields, sid, 'r', 'retrying')
    if id then redis.call('HSET', P .. 'd:' .. id, 'e', added, 'q', 's') end
  end
  redis.call('XDEL', scheduled, sid)
  redis.call('ZREM', due, sid)
end

local claimed, taken = {}, {}
-- The key's newest done occurred-at, and the key taken by `entry`.
local function take_key(fields, entry)
  local k = field(fields, 'ok')
  if not k then return '' end
  redis.call('HSET', P .. 'k:running', k, entry)
  return redis.call('HGET', P .. 'k:newest', k) or ''
end
-- Expired leases, re-claimed: XCLAIM counts the delivery.
for _, entry in ipairs(redis.call('ZRANGEBYSCORE', leases, '-inf', int(now), 'LIMIT', 0, max)) do
  local ended = tonumber(redis.call('ZSCORE', leases, entry)) or now
  local got = redis.call('XCLAIM', stream, group, consumer, 0, entry)
  if got[1] and type(got[1][2]) == 'table' then
    local pending = redis.call('XPENDING', stream, group, entry, entry, 1)
    local count = 1
    if pending[1] then count = pending[1][4] end
    redis.call('ZADD', leases, lease_end, entry)
    local fields = got[1][2]
    local id = ensure_record(P, fields, entry, 's', 'running')
    if id then
      -- The lost claim's attempt ran until its lease ended.
      attempt_ended(P, id, ended, 'lease_expired', nil)
      move(P, id, 'running', {a = int((tonumber(field(fields, 'a')) or 0) + count),
        worker = worker, claimed = int(now), e = entry, q = 's'})
    end
    claimed[#claimed + 1] = {entry, int(count), got[1][2], take_key(got[1][2], entry)}
    taken[#taken + 1] = entry
    taken[#taken + 1] = int(count)
  else
    redis.call('ZREM', leases, entry)
  end
end

-- New entries, reading past the ones held back for their key by at most HELD_SLACK entries.
local HELD_SLACK = 64
local budget = max - #claimed + HELD_SLACK
local more = 0
local moves = index_batch()
while #claimed < max do
  if budget <= 0 then
    more = 1
    break
  end
  local want = max - #claimed
  if want > budget then want = budget end
  local read = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', want, 'STREAMS',
    stream, '>')
  if not (read and read[1] and read[1][2][1]) then break end
  budget = budget - #read[1][2]
  for _, item in ipairs(read[1][2]) do
    local k, id = field(item[2], 'ok'), field(item[2], 'id')
    local head = k and key_head(P, k)
    if k and id and ((head and head ~= id) or key_held(P, k, item[1])) then
      key_park(P, stream, group, item[1], item[2])
    else
      redis.call('ZADD', leases, lease_end, item[1])
      if id then
        -- `move` to running, its index part written with the others' at the end.
        local key = P .. 'd:' .. id
        local d = redis.call('HMGET', key, 'state', 'type', 'grp', 'recv')
        if not d[1] then
          ensure_record(P, item[2], item[1], 's', 'waiting')
          d = redis.call('HMGET', key, 'state', 'type', 'grp', 'recv')
        end
        if d[1] ~= 'running' then
          index_move_later(moves, P, id, d[1], 'running', d[2] or '', d[3] or '', d[4] or '0')
        end
        redis.call('HSET', key, 'state', 'running',
          'a', int((tonumber(field(item[2], 'a')) or 0) + 1), 'worker', worker,
          'claimed', int(now), 'e', item[1], 'q', 's')
      end
      claimed[#claimed + 1] = {item[1], '1', item[2], take_key(item[2], item[1])}
      taken[#taken + 1] = item[1]
      taken[#taken + 1] = '1'
    end
  end
end

index_flush(moves)

-- The receipts under the caller's token, for abandon if this reply is lost.
if #taken > 0 then
  redis.call('HSET', receipts, unpack(taken))
  redis.call('PEXPIRE', receipts, lease)
end
return {claimed, more}
