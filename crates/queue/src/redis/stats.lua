-- KEYS: stream, due, dead, scheduled, held (jobs held back for their key). {depth, dead, oldest received (ms) or ''}.
local depth = redis.call('XLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2])
  + redis.call('ZCARD', KEYS[5])
local dead = redis.call('XLEN', KEYS[3])
local oldest = nil
for _, key in ipairs({KEYS[1], KEYS[4]}) do
  local first = redis.call('XRANGE', key, '-', '+', 'COUNT', 1)
  if first[1] then
    local received = tonumber(field(first[1][2], 'recv'))
    if received and (oldest == nil or received < oldest) then oldest = received end
  end
end
local held = redis.call('ZRANGE', KEYS[5], 0, 0, 'WITHSCORES')
if held[2] then
  local received = tonumber(held[2])
  if received and (oldest == nil or received < oldest) then oldest = received end
end
if oldest == nil then return {depth, dead, ''} end
return {depth, dead, int(oldest)}
