-- Schema 1 to 2, one batch: the records of a queue written before the delivery record.
-- KEYS: stream, scheduled, due, dead, dead index, leases. ARGV: prefix, group, phase
-- ('stream', 'scheduled' or 'dead'), from (an entry id, exclusive, or '-'), batch.
-- Builds the record of each entry of the phase's stream that has none; returns where the next
-- batch starts, or '' when the phase is done. Done deliveries of schema 1 kept no body: only
-- their id marks remain, duplicates until they expire.
local P, group, phase = ARGV[1], ARGV[2], ARGV[3]
local batch = int_arg(ARGV[5], 1, 10000)
if not batch then return redis.error_reply('ERR migrate: batch out of range') end
local start = '-'
if ARGV[4] ~= '-' then start = '(' .. ARGV[4] end
local key = ({stream = KEYS[1], scheduled = KEYS[2], dead = KEYS[4]})[phase]
if not key then return redis.error_reply('ERR migrate: unknown phase') end
local entries = redis.call('XRANGE', key, start, '+', 'COUNT', batch)
for _, item in ipairs(entries) do
  local entry, fields = item[1], item[2]
  local id = field(fields, 'id')
  if phase == 'stream' and id then
    local pending = redis.pcall('XPENDING', KEYS[1], group, entry, entry, 1)
    if type(pending) == 'table' and pending.err == nil and pending[1] then
      -- Running: its attempt is the entry's earlier ones plus the group's delivery count.
      ensure_record(P, fields, entry, 's', 'running', {
        a = int((tonumber(field(fields, 'a')) or 0) + pending[1][4])})
    else
      local state = 'waiting'
      if (tonumber(field(fields, 'a')) or 0) > 0 then state = 'retrying' end
      ensure_record(P, fields, entry, 's', state)
    end
  elseif phase == 'scheduled' and id then
    local due = redis.call('ZSCORE', KEYS[3], entry)
    local extra = {}
    if field(fields, 'err') then extra.err = field(fields, 'err') end
    if due then extra.next = due end
    ensure_record(P, fields, entry, 'r', 'retrying', extra)
  elseif phase == 'dead' and id and redis.call('HGET', KEYS[5], id) == entry then
    ensure_record(P, fields, entry, 'd', 'dead', {
      err = field(fields, 'err') or false, died = field(fields, 'died') or false})
  end
end
if #entries < batch then return '' end
return entries[#entries][1]
