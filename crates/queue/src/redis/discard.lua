-- KEYS: stream, scheduled, due, dead, dead index, id mark. ARGV: webhook id, who asked, prefix.
-- A waiting or retrying delivery to the dead letters, "discarded by operator"; 0 for any other
-- (a running one is its worker's until it settles).
local P, id = ARGV[3], ARGV[1]
local key = P .. 'd:' .. id
local now = redis.call('HMGET', key, 'state', 'e', 'q', 'a', 'ok')
if now[1] ~= 'waiting' and now[1] ~= 'retrying' then return 0 end
if now[2] then
  if now[3] == 'r' then
    redis.call('XDEL', KEYS[2], now[2])
    redis.call('ZREM', KEYS[3], now[2])
  else
    redis.call('XDEL', KEYS[1], now[2])
  end
end
local at = now_ms()
local died = int(at)
local reason = 'discarded by operator (' .. ARGV[2] .. ')'
local fields = entry_from_record(P, id, now[4] or '0')
fields[#fields + 1] = 'err'
fields[#fields + 1] = reason
fields[#fields + 1] = 'died'
fields[#fields + 1] = died
local did = redis.call('XADD', KEYS[4], '*', unpack(fields))
redis.call('HSET', KEYS[5], id, did)
redis.call('PERSIST', KEYS[6])
move(P, id, 'dead', {err = reason, died = died, e = did, q = 'd', next = false})
append_action(P, id, at, 'discarded', ARGV[2])
if now[5] then
  -- Out of its key's jobs (held back or not), and the key's next one woken if it is free.
  redis.call('ZREM', P .. 'k:w:' .. now[5], id)
  redis.call('ZREM', P .. 'k:held', id)
  key_wake(P, KEYS[1], now[5])
end
return 1
