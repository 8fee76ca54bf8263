-- KEYS: stream, leases. ARGV: group, entry, count, prefix.
if not held(KEYS[1], ARGV[1], ARGV[2], ARGV[3]) then return 0 end
return give_back(ARGV[4], KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], true)
