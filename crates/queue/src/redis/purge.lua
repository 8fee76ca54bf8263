-- KEYS: dead, dead index. ARGV: dead-letter retention (ms), batch, id-mark prefix.
-- Deletes the oldest dead letters past the retention (a dead entry's id is the engine's time
-- of its burial), each webhook-id forgotten with it: {purged, 1 if the batch was full}.
-- The id marks are named from the prefix (on a Cluster its hash tag keeps them in this slot).
local retention = tonumber(ARGV[1])
local batch = int_arg(ARGV[2], 1, 100000)
if not retention or retention < 0 or not batch then
  return redis.error_reply('ERR purge: retention or batch out of range')
end
local now = now_ms()
-- A retention longer than the time since 1970 (Duration::MAX) keeps them forever.
if retention >= now then return {0, 0} end
local old = redis.call('XRANGE', KEYS[1], '-', int(now - retention), 'COUNT', batch)
for _, entry in ipairs(old) do
  local id = field(entry[2], 'id')
  if id and redis.call('HGET', KEYS[2], id) == entry[1] then
    redis.call('HDEL', KEYS[2], id)
    redis.call('DEL', ARGV[3] .. 'id:' .. id)
  end
  redis.call('XDEL', KEYS[1], entry[1])
end
local full = 0
if #old == batch then full = 1 end
return {#old, full}
