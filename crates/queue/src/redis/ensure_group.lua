-- KEYS: stream. ARGV: group. Creates the stream and the group unless they exist; refuses when
-- another group reads the stream.
local refused = ensure_group(KEYS[1], ARGV[1])
if refused then return redis.error_reply(refused) end
return 1
