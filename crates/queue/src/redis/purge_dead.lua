-- KEYS: dead, dead index. ARGV: before (ms), at most how many, prefix.
-- Deletes the oldest dead letters buried before `before` (a dead entry's id is the time of its
-- burial), each with its record and its webhook-id mark; returns how many.
local before = tonumber(ARGV[1])
local max = int_arg(ARGV[2], 0, 100000)
if not before or before ~= math.floor(before) or not max then
  return redis.error_reply('ERR purge_dead: time or bound out of range')
end
if max == 0 or before <= 0 then return 0 end
local P = ARGV[3]
local old = redis.call('XRANGE', KEYS[1], '-', '(' .. int(before) .. '-0', 'COUNT', max)
for _, entry in ipairs(old) do
  local id = field(entry[2], 'id')
  if id and redis.call('HGET', KEYS[2], id) == entry[1] then
    redis.call('HDEL', KEYS[2], id)
    redis.call('DEL', P .. 'id:' .. id)
    drop_record(P, id)
  end
  redis.call('XDEL', KEYS[1], entry[1])
end
return #old
