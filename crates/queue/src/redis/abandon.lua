-- KEYS: stream, leases, the claim's receipts. ARGV: group, prefix.
-- Gives back every entry the claim took that its receipt still holds; returns how many. An
-- abandoned claim's attempt never ran: it is not in the history.
local receipts = redis.call('HGETALL', KEYS[3])
local given = 0
for i = 1, #receipts, 2 do
  local entry, count = receipts[i], receipts[i + 1]
  if held(KEYS[1], ARGV[1], entry, count) then
    given = given + give_back(ARGV[2], KEYS[1], KEYS[2], ARGV[1], entry, count, false)
  end
end
redis.call('DEL', KEYS[3])
return given
