-- KEYS: dead, dead index. ARGV: dead-letter retention (ms), batch, prefix, record retention (ms),
-- key retention (ms): ordering keys whose newest was last written before it are deleted too.
-- Deletes the oldest done deliveries past the record's retention (by `done-at`) and the oldest
-- dead letters past the dead-letter retention (a dead entry's id is the engine's time of its
-- burial), each with its record and its webhook-id mark: {done, dead, 1 if a batch was full}.
-- The keys of a delivery are named from the prefix (on a Cluster its hash tag keeps them in
-- this slot).
local retention = tonumber(ARGV[1])
local batch = int_arg(ARGV[2], 1, 100000)
local P = ARGV[3]
local record_retention = tonumber(ARGV[4])
if not retention or retention < 0 or not batch or not record_retention or record_retention < 0 then
  return redis.error_reply('ERR purge: retention or batch out of range')
end
local now = now_ms()
local done = {}
-- A retention longer than the time since 1970 (Duration::MAX) keeps them forever.
if record_retention < now then
  done = redis.call('ZRANGEBYSCORE', P .. 'done-at', '-inf', int(now - record_retention),
    'LIMIT', 0, batch)
  for _, id in ipairs(done) do
    if redis.call('HGET', P .. 'd:' .. id, 'state') == 'done' then
      drop_record(P, id)
      redis.call('DEL', P .. 'id:' .. id)
    else
      redis.call('ZREM', P .. 'done-at', id)
    end
  end
end
local old = {}
if retention < now then
  old = redis.call('XRANGE', KEYS[1], '-', int(now - retention), 'COUNT', batch)
  for _, entry in ipairs(old) do
    local id = field(entry[2], 'id')
    if id and redis.call('HGET', KEYS[2], id) == entry[1] then
      redis.call('HDEL', KEYS[2], id)
      redis.call('DEL', P .. 'id:' .. id)
      drop_record(P, id)
    end
    redis.call('XDEL', KEYS[1], entry[1])
  end
end
local keys = {}
local key_retention = tonumber(ARGV[5])
if key_retention and key_retention >= 0 and key_retention < now then
  keys = redis.call('ZRANGEBYSCORE', P .. 'k:touched', '-inf', int(now - key_retention),
    'LIMIT', 0, batch)
  for _, k in ipairs(keys) do
    redis.call('HDEL', P .. 'k:newest', k)
    redis.call('ZREM', P .. 'k:touched', k)
  end
end
local full = 0
if #old == batch or #done == batch or #keys == batch then full = 1 end
return {#done, #old, full}
