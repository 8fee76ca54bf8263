-- KEYS: dead, dead index. ARGV: webhook id. The dead entry's fields, or nil.
local did = redis.call('HGET', KEYS[2], ARGV[1])
if not did then return false end
return entry_fields(KEYS[1], did) or false
