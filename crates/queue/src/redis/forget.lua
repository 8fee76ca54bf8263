-- KEYS: id mark. ARGV: webhook id, who asked, prefix.
-- A done or dead delivery's id forgotten: the sender's next resend is stored again as new (the
-- record stays until then, or until its retention).
local P, id = ARGV[3], ARGV[1]
local state = redis.call('HGET', P .. 'd:' .. id, 'state')
if state ~= 'done' and state ~= 'dead' then return 0 end
redis.call('DEL', KEYS[1])
append_action(P, id, now_ms(), 'forgotten', ARGV[2])
return 1
