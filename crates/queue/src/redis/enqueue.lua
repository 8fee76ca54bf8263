-- KEYS: id mark, stream. ARGV: id, type, timestamp, signature, received, body, group, prefix,
-- touch ('1' when a WAIT follows: a duplicate rewrites its mark, unchanged, so that the WAIT
-- after it also covers the write it duplicates, made on another connection), ordering key and
-- occurred-at (ms) of a keyed delivery ('' and '' for none), when the event occurred (ms) for
-- the record's lists, every delivery's ('' for none: kept as `occ`, apart from the ordering's).
-- 1 new, 0 duplicate. A new id: the mark, the entry, its record and index entries. A known id
-- is a duplicate unless its delivery is dead (the sender's resend from its portal) or its mark
-- is gone while its record stays (forgotten, or done longer ago than the retention): then it
-- is stored again as resent. The one round trip of every delivery.
local P, id = ARGV[8], ARGV[1]
local record = P .. 'd:' .. id
local fresh = redis.call('SET', KEYS[1], '1', 'NX')
local state = redis.call('HGET', record, 'state')
if not fresh then
  if state ~= 'dead' then
    if ARGV[9] == '1' then redis.call('SET', KEYS[1], '1', 'XX', 'KEEPTTL') end
    return 0
  end
elseif state and state ~= 'done' and state ~= 'dead' then
  -- Waiting, running or retrying whose mark was lost: the mark is back, and it is a duplicate.
  return 0
end
-- A keyed delivery (ARGV[10] its ordering key, ARGV[11] its occurred-at, ms; '' for none).
local k, oat = ARGV[10], tonumber(ARGV[11] or '')
if k == '' or oat == nil or oat ~= math.floor(oat) then k = nil end
local occ = tonumber(ARGV[12] or '')
if occ ~= nil and occ ~= math.floor(occ) then occ = nil end
local entry = {'id', id, 'type', ARGV[2], 'ts', ARGV[3], 'sig', ARGV[4], 'recv', ARGV[5],
  'body', ARGV[6], 'a', '0'}
if k then
  entry[#entry + 1] = 'ok'
  entry[#entry + 1] = k
  entry[#entry + 1] = 'oat'
  entry[#entry + 1] = int(oat)
end
local added = redis.call('XADD', KEYS[2], '*', unpack(entry))
if state then
  -- Stored again as resent: out of the dead letters and the old indexes.
  local old = redis.call('HMGET', record, 'type', 'grp')
  if state == 'dead' then
    local dead = P .. 'dead'
    local did = redis.call('HGET', P .. 'dead-index', id)
    if did then
      redis.call('XDEL', dead, did)
      redis.call('HDEL', P .. 'dead-index', id)
    end
  end
  index_rem(P, id, state, old[1] or '', old[2] or '')
  redis.call('ZREM', P .. 'done-at', id)
  redis.call('HDEL', record, 'err', 'done', 'died', 'worker', 'claimed', 'ok', 'oat', 'occ')
end
redis.call('HSET', record, 'id', id, 'type', ARGV[2], 'grp', ARGV[7], 'ts', ARGV[3],
  'sig', ARGV[4], 'recv', ARGV[5], 'body', ARGV[6], 'state', 'waiting', 'a', '0',
  'next', ARGV[5], 'e', added, 'q', 's')
if occ then redis.call('HSET', record, 'occ', int(occ)) end
if k then
  redis.call('HSET', record, 'ok', k, 'oat', int(oat))
  redis.call('ZADD', P .. 'k:w:' .. k, int(oat), id)
end
index_add(P, id, 'waiting', ARGV[2], ARGV[7], ARGV[5])
redis.call('HSETNX', P .. 'types', ARGV[2], ARGV[7])
if state then append_action(P, id, now_ms(), 'resent', nil) end
return 1
