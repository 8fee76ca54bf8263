-- ARGV: prefix, since, until ('' for none), type kind ('' any, 't' one type, 'g' a group), its
-- value. {state, type, count} for every state and type with deliveries received in the range:
-- ZCOUNT on each state-and-type index, so O(states x types x log n).
local P = ARGV[1]
local min, max = '-inf', '+inf'
if ARGV[2] ~= '' then min = ARGV[2] end
if ARGV[3] ~= '' then max = '(' .. ARGV[3] end
local types = redis.call('HGETALL', P .. 'types')
local out = {}
for i = 1, #types, 2 do
  local event_type, group = types[i], types[i + 1]
  if ARGV[4] == '' or (ARGV[4] == 't' and event_type == ARGV[5])
    or (ARGV[4] == 'g' and group == ARGV[5]) then
    for _, state in ipairs({'waiting', 'running', 'retrying', 'done', 'dead'}) do
      local n = redis.call('ZCOUNT', P .. 'r:st:' .. state .. ':' .. event_type, min, max)
      if n > 0 then out[#out + 1] = {state, event_type, n} end
    end
  end
end
return out
