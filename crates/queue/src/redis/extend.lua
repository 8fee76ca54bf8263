-- KEYS: stream, leases. ARGV: group, entry, count, lease (ms), consumer.
-- The lease pushed back to `lease` from the engine's now, and the entry's idle time in the
-- group reset (XCLAIM ... JUSTID counts no delivery).
local lease = int_arg(ARGV[4], 1, MAX_MS)
if not lease then return redis.error_reply('ERR extend: lease out of range') end
if not held(KEYS[1], ARGV[1], ARGV[2], ARGV[3]) then return 0 end
local lease_end = int(now_ms() + lease)
local kept = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[5], 0, ARGV[2], 'JUSTID')
if not kept[1] then
  -- The entry was deleted under its lease: XCLAIM dropped it from the group.
  redis.call('ZREM', KEYS[2], ARGV[2])
  return 0
end
redis.call('ZADD', KEYS[2], lease_end, ARGV[2])
return 1
