-- KEYS: stream, leases. ARGV: group, retention (s), prefix, then per job four values: entry,
-- count, outcome ('ok', or 'stale' for complete_stale), webhook id (whose mark is kept for the
-- retention from now).
-- complete.lua for each job in turn, in one script: the completions that arrived while the
-- previous batch was in flight (see completions.rs). Returns one 1 (completed) or 0 (its
-- receipt no longer holds the entry) per job, in order. Each job is settled under its own
-- receipt before the next is looked at, so a receipt given twice completes once.
local stream, leases, group, P = KEYS[1], KEYS[2], ARGV[1], ARGV[3]
local retention = int_arg(ARGV[2], 1, MAX_MS / 1000)
if not retention then return redis.error_reply('ERR complete: retention out of range') end
local n = (#ARGV - 3) / 4
if n ~= math.floor(n) or n < 1 then
  return redis.error_reply('ERR complete: entry, count, outcome and webhook id per job')
end
for i = 1, n do
  local outcome = ARGV[2 + 4 * i]
  if outcome ~= 'ok' and outcome ~= 'stale' then
    return redis.error_reply('ERR complete: outcome is ok or stale')
  end
end
local now = now_ms()
local done = {}
local moves = index_batch()
for i = 1, n do
  local entry, count = ARGV[4 * i], ARGV[1 + 4 * i]
  local outcome, webhook_id = ARGV[2 + 4 * i], ARGV[3 + 4 * i]
  if not held(stream, group, entry, count) then
    done[i] = 0
  else
    -- The record's state, indexes, current claim and ordering key in one read (complete.lua
    -- reads the entry, then the record in three: ensure_record, attempt_ended, move). The
    -- record's `e` is the entry while it runs; only then are the entry's id and key taken
    -- from it, else from the entry itself.
    local key = P .. 'd:' .. webhook_id
    local d = redis.call('HMGET', key, 'state', 'type', 'grp', 'recv', 'a', 'claimed',
      'worker', 'seq', 'e', 'ok', 'oat')
    local fields, id
    if d[1] and d[9] == entry then
      id = webhook_id
      fields = {'id', id}
      if d[10] and d[11] then
        fields[3], fields[4], fields[5], fields[6] = 'ok', d[10], 'oat', d[11]
      end
    else
      fields = entry_fields(stream, entry)
      id = fields and field(fields, 'id')
      d = nil
    end
    redis.call('XACK', stream, group, entry)
    redis.call('XDEL', stream, entry)
    redis.call('ZREM', leases, entry)
    redis.call('SET', P .. 'id:' .. webhook_id, '1', 'EX', int(retention))
    if id and not d then
      -- Its record is not the entry's (or there is none: an entry written by an older
      -- version): done as complete.lua does it.
      ensure_record(P, fields, entry, 's', 'running')
      attempt_ended(P, id, now, outcome, nil)
      move(P, id, 'done', {done = int(now), e = false, q = false, next = false})
      redis.call('ZADD', P .. 'done-at', int(now), id)
    elseif id then
      local started = tonumber(d[6]) or now
      local duration = now - started
      if duration < 0 then duration = 0 end
      local history = history_entry(started, 'attempt', tonumber(d[5]) or 0, duration, outcome,
        d[7] or '', nil)
      local seq = (tonumber(d[8]) or 0) + 1
      if d[1] ~= 'done' then
        index_move_later(moves, P, id, d[1], 'done', d[2] or '', d[3] or '', d[4] or '0')
      end
      if seq == 1 then
        redis.call('HSET', key, 'state', 'done', 'done', int(now), 'seq', int(seq),
          'first', history)
      else
        redis.call('HSET', key, 'state', 'done', 'done', int(now), 'seq', int(seq))
        redis.call('RPUSH', P .. 'h:' .. id, history)
        redis.call('LTRIM', P .. 'h:' .. id, -(MAX_HISTORY - 1), -1)
      end
      redis.call('HDEL', key, 'e', 'q', 'next')
      index_add_later(moves, P .. 'done-at', int(now), id)
    end
    local k = fields and field(fields, 'ok')
    local oat = fields and tonumber(field(fields, 'oat'))
    if k and oat and outcome == 'ok' then
      local newest = tonumber(redis.call('HGET', P .. 'k:newest', k))
      if not newest or oat > newest then redis.call('HSET', P .. 'k:newest', k, int(oat)) end
      redis.call('ZADD', P .. 'k:touched', int(now), k)
    end
    key_settled(P, stream, entry, fields, true)
    done[i] = 1
  end
end
index_flush(moves)
return done
