-- KEYS: stream, dead, dead index, id mark. ARGV: webhook id, who asked, prefix, 1 if a done
-- delivery may be replayed too (a dead one always may).
-- Runs it again: waiting, due now, attempts counted anew, the replay in its history.
local P, id = ARGV[3], ARGV[1]
local state = redis.call('HGET', P .. 'd:' .. id, 'state')
if not (state == 'dead' or (state == 'done' and ARGV[4] == '1')) then return 0 end
if state == 'dead' then
  local did = redis.call('HGET', KEYS[3], id)
  if did then
    redis.call('HDEL', KEYS[3], id)
    redis.call('XDEL', KEYS[2], did)
  end
end
local now = now_ms()
local added = redis.call('XADD', KEYS[1], '*', unpack(entry_from_record(P, id, '0')))
redis.call('SET', KEYS[4], '1')
move(P, id, 'waiting', {a = '0', next = int(now), err = false, died = false, done = false,
  e = added, q = 's'})
  local order = redis.call('HMGET', P .. 'd:' .. id, 'ok', 'oat')
  if order[1] and order[2] then redis.call('ZADD', P .. 'k:w:' .. order[1], order[2], id) end
append_action(P, id, now, 'replayed', ARGV[2])
return 1
