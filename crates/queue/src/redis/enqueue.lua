-- KEYS: id mark, stream. ARGV: id, type, timestamp, signature, received, body.
-- 1 new, 0 duplicate. Two commands, no clock: the one round trip of every delivery.
if not redis.call('SET', KEYS[1], '1', 'NX') then
  return 0
end
redis.call('XADD', KEYS[2], '*', 'id', ARGV[1], 'type', ARGV[2], 'ts', ARGV[3], 'sig', ARGV[4],
  'recv', ARGV[5], 'body', ARGV[6], 'a', '0')
return 1
