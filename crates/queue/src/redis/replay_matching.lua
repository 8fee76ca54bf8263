-- KEYS: stream, dead, dead index, then the index sorted sets to walk (of done and dead
-- deliveries only). ARGV: prefix, at most how many, since, until, id prefix, exact id, budget,
-- who asked, least delay (ms, '' for none). Replays the newest first, in one step; returns how
-- many.
local P = ARGV[1]
local max = int_arg(ARGV[2], 0, 100000)
local budget = int_arg(ARGV[7], 1, 10000000)
if not (max and budget) then return redis.error_reply('ERR replay: bound or budget out of range') end
local indexes = {}
for i = 4, #KEYS do indexes[#indexes + 1] = KEYS[i] end
local exact = nil
if ARGV[6] ~= '' then exact = ARGV[6] end
local found = select_deliveries(indexes, max, opt_number(ARGV[3]), opt_number(ARGV[4]), nil,
  nil, ARGV[5], exact, budget, P, opt_number(ARGV[9]))
local now = now_ms()
local replayed = 0
for _, one in ipairs(found) do
  local id = one[2]
  local state = redis.call('HGET', P .. 'd:' .. id, 'state')
  if state == 'done' or state == 'dead' then
    if state == 'dead' then
      local did = redis.call('HGET', KEYS[3], id)
      if did then
        redis.call('HDEL', KEYS[3], id)
        redis.call('XDEL', KEYS[2], did)
      end
    end
    local added = redis.call('XADD', KEYS[1], '*', unpack(entry_from_record(P, id, '0')))
    redis.call('SET', P .. 'id:' .. id, '1')
    move(P, id, 'waiting', {a = '0', next = int(now), err = false, died = false, done = false,
      e = added, q = 's'})
  local order = redis.call('HMGET', P .. 'd:' .. id, 'ok', 'oat')
  if order[1] and order[2] then redis.call('ZADD', P .. 'k:w:' .. order[1], order[2], id) end
    append_action(P, id, now, 'replayed', ARGV[8])
    replayed = replayed + 1
  end
end
return replayed
