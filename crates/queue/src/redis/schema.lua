-- KEYS: schema version, stream, scheduled, dead. ARGV: the version this build writes.
-- The queue's version: the key's value; 1 for a queue written before the key (its work keys
-- exist); 0 for a new queue (then the key is set to ARGV[1], unless the key is not a number,
-- refused). Writes nothing unless the queue is new.
local found = redis.call('GET', KEYS[1])
if found then
  local version = tonumber(found)
  if not version then return redis.error_reply('ERR the schema key holds no version') end
  return version
end
if redis.call('EXISTS', KEYS[2], KEYS[3], KEYS[4]) > 0 then return 1 end
redis.call('SET', KEYS[1], ARGV[1])
return 0
