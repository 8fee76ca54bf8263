-- KEYS: the index sorted sets to walk. ARGV: prefix, how many (the page and one more), since,
-- until, cursor ms, cursor id, id prefix, exact id, budget, least delay (ms) ('' for none of
-- those). {summaries, stop ms, stop id}: each summary {id, type, state, received, attempts,
-- last error, next run, occurred}, newest first.
local P = ARGV[1]
local want = int_arg(ARGV[2], 0, 100001)
local budget = int_arg(ARGV[9], 1, 10000000)
if not (want and budget) then return redis.error_reply('ERR list: limit or budget out of range') end
local cms = opt_number(ARGV[5])
local exact = nil
if ARGV[8] ~= '' then exact = ARGV[8] end
local found, stop = select_deliveries(KEYS, want, opt_number(ARGV[3]), opt_number(ARGV[4]),
  cms, ARGV[6], ARGV[7], exact, budget, P, opt_number(ARGV[10]))
local rows = {}
for _, one in ipairs(found) do
  local d = redis.call('HMGET', P .. 'd:' .. one[2], 'type', 'state', 'recv', 'a', 'err', 'next',
    'occ')
  if d[2] then
    rows[#rows + 1] = {one[2], d[1] or '', d[2], d[3] or int(one[1]), d[4] or '0', d[5], d[6],
      d[7]}
  end
end
if stop then return {rows, int(stop[1]), stop[2]} end
return {rows, false, false}
