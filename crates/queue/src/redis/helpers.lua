-- Prepended to every script but enqueue's: the engine's clock, argument checks, entry fields,
-- receipts, giving an entry back, and the consumer group.

-- Ten years in ms: the longest lease, delay or retention a script takes (the Rust side clamps
-- to it), well inside what Redis's expiries and a Lua number hold exactly.
local MAX_MS = 315360000000

-- The engine's clock in ms. On Redis 7 a script may write after TIME (its effects are
-- replicated, not the script), so every instance's leases and due times use this one clock.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- A number as Redis takes it (no exponent).
local function int(n)
  return string.format('%d', n)
end

-- `value` as an integer within [low, high], or nil: checked before the first write, so that a
-- script never fails half-way.
local function int_arg(value, low, high)
  local n = tonumber(value)
  if n == nil or n ~= math.floor(n) or n < low or n > high then return nil end
  return n
end

local function field(fields, name)
  for i = 1, #fields, 2 do
    if fields[i] == name then return fields[i + 1] end
  end
  return nil
end

local function with(fields, changes)
  local out = {}
  for i = 1, #fields, 2 do
    local name = fields[i]
    if changes[name] == nil then
      out[#out + 1] = name
      out[#out + 1] = fields[i + 1]
    end
  end
  for name, value in pairs(changes) do
    if value ~= false then
      out[#out + 1] = name
      out[#out + 1] = value
    end
  end
  return out
end

-- Whether the receipt `entry`/`count` still holds the entry: pending, delivered `count` times.
local function held(stream, group, entry, count)
  local pending = redis.call('XPENDING', stream, group, entry, entry, 1)
  return pending[1] ~= nil and pending[1][4] == tonumber(count)
end

local function entry_fields(stream, entry)
  local found = redis.call('XRANGE', stream, entry, entry)
  if found[1] then return found[1][2] end
  return nil
end

-- Makes sure `group` reads `stream`, creating both if needed: nil, or the refusal when another
-- group reads it (each group would run every job). Its only write is its last step.
local function ensure_group(stream, group)
  local groups = redis.pcall('XINFO', 'GROUPS', stream)
  local others = {}
  if type(groups) == 'table' and groups.err == nil then
    for _, info in ipairs(groups) do
      local name = field(info, 'name')
      if name == group then return nil end
      others[#others + 1] = tostring(name)
    end
  end
  if #others > 0 then
    return 'WRONGGROUP the queue ' .. stream .. ' is read by the consumer group ' ..
      table.concat(others, ', ') .. ', not ' .. group .. ': two groups would each run every ' ..
      'job. Use the group ' .. others[1] .. ' (RedisOptions::group) or another prefix; to ' ..
      'rename the group, stop its workers and run XGROUP DESTROY ' .. stream .. ' ' ..
      others[1] .. ' once its jobs are done'
  end
  redis.call('XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM')
  return nil
end

-- The delivery record, under the queue's prefix `P`: a hash per delivery (`d:<id>`), the
-- latest of its history in a list (`h:<id>`; the first entry is the hash's `first`), and index
-- sorted sets scored by received-at (ms), members the webhook ids: per state (`r:s:<state>`),
-- per state and type (`r:st:<state>:<type>`), per state and group (`r:sg:<state>:<group>`);
-- `done-at` scores the done ones by when they were done, for the purge; `types` maps every
-- type seen to its group, for the counts.

-- The most history entries kept per delivery: the first and the latest (record::MAX_HISTORY).
local MAX_HISTORY = 25
local GROUPS = {'producersync', 'contract', 'id.producer'}

-- The portal group of a type (EventGroup::of), '' for none.
local function group_of(event_type)
  for _, group in ipairs(GROUPS) do
    if #event_type > #group + 1 and string.sub(event_type, 1, #group + 1) == group .. '.' then
      return group
    end
  end
  return ''
end

local function index_add(P, id, state, event_type, group, received)
  redis.call('ZADD', P .. 'r:s:' .. state, received, id)
  redis.call('ZADD', P .. 'r:st:' .. state .. ':' .. event_type, received, id)
  if group ~= '' then redis.call('ZADD', P .. 'r:sg:' .. state .. ':' .. group, received, id) end
end

local function index_rem(P, id, state, event_type, group)
  redis.call('ZREM', P .. 'r:s:' .. state, id)
  redis.call('ZREM', P .. 'r:st:' .. state .. ':' .. event_type, id)
  if group ~= '' then redis.call('ZREM', P .. 'r:sg:' .. state .. ':' .. group, id) end
end

-- Index moves gathered over a script's deliveries and written by `index_flush` at its end: one
-- ZREM and one ZADD per index key (most of a batch's deliveries share them) rather than three
-- of each per delivery. Only for moves whose order against the script's other writes does not
-- matter: every member is removed from its old state's sets, then added to its new one's.
local function index_batch()
  return {rem = {}, add = {}}
end

local function index_push(sets, key, a, b)
  local t = sets[key]
  if not t then
    t = {}
    sets[key] = t
  end
  t[#t + 1] = a
  if b then t[#t + 1] = b end
end

-- `move`'s index part for `id`, from `from` to `to` (distinct), into `batch`.
local function index_move_later(batch, P, id, from, to, event_type, group, received)
  index_push(batch.rem, P .. 'r:s:' .. from, id)
  index_push(batch.rem, P .. 'r:st:' .. from .. ':' .. event_type, id)
  index_push(batch.add, P .. 'r:s:' .. to, received, id)
  index_push(batch.add, P .. 'r:st:' .. to .. ':' .. event_type, received, id)
  if group ~= '' then
    index_push(batch.rem, P .. 'r:sg:' .. from .. ':' .. group, id)
    index_push(batch.add, P .. 'r:sg:' .. to .. ':' .. group, received, id)
  end
  if from == 'done' then index_push(batch.rem, P .. 'done-at', id) end
end

-- Adds `id` (scored `score`) to the sorted set `key` at the flush.
local function index_add_later(batch, key, score, id)
  index_push(batch.add, key, score, id)
end

local function index_flush(batch)
  for key, members in pairs(batch.rem) do redis.call('ZREM', key, unpack(members)) end
  for key, members in pairs(batch.add) do redis.call('ZADD', key, unpack(members)) end
end

-- Sets the fields of `changes` (a value of false deletes the field).
local function set_fields(key, changes)
  local put, del = {}, {}
  for name, value in pairs(changes) do
    if value == false then
      del[#del + 1] = name
    else
      put[#put + 1] = name
      put[#put + 1] = value
    end
  end
  if #put > 0 then redis.call('HSET', key, unpack(put)) end
  if #del > 0 then redis.call('HDEL', key, unpack(del)) end
end

-- Moves the delivery `id` to `state`, its indexes with it, and sets `changes`: false if it has
-- no record (then nothing is written).
local function move(P, id, state, changes)
  local key = P .. 'd:' .. id
  local now = redis.call('HMGET', key, 'state', 'type', 'grp', 'recv')
  if not now[1] then return false end
  if now[1] ~= state then
    index_rem(P, id, now[1], now[2] or '', now[3] or '')
    index_add(P, id, state, now[2] or '', now[3] or '', now[4] or '0')
    if now[1] == 'done' then redis.call('ZREM', P .. 'done-at', id) end
  end
  changes.state = state
  set_fields(key, changes)
  return true
end

-- One history entry as stored: `at|kind|number|duration|outcome|len(worker)|has text|` then
-- the worker and the text (an attempt's error, an action's actor), both free text.
local function history_entry(at, kind, number, duration, outcome, worker, text)
  worker = worker or ''
  local has = '1'
  if text == nil or text == false then
    has = '0'
    text = ''
  end
  return table.concat({int(at), kind, int(number), int(duration), outcome, int(#worker), has}, '|')
    .. '|' .. worker .. text
end

-- Appends an entry to the history of `id` (which has a record): the first is kept in the hash,
-- the latest MAX_HISTORY - 1 in the list.
local function append(P, id, at, kind, number, duration, outcome, worker, text)
  local key = P .. 'd:' .. id
  local entry = history_entry(at, kind, number, duration, outcome, worker, text)
  local seq = redis.call('HINCRBY', key, 'seq', 1)
  if seq == 1 then
    redis.call('HSET', key, 'first', entry)
  else
    local history = P .. 'h:' .. id
    redis.call('RPUSH', history, entry)
    redis.call('LTRIM', history, -(MAX_HISTORY - 1), -1)
  end
end

-- An operator's (or the sender's) action in the history of `id`.
local function append_action(P, id, at, kind, by)
  append(P, id, at, kind, 0, 0, '', '', by)
end

-- The attempt of the current claim of `id`, ended at `now` with `outcome` (and `err`).
local function attempt_ended(P, id, now, outcome, err)
  local claim = redis.call('HMGET', P .. 'd:' .. id, 'a', 'claimed', 'worker')
  local started = tonumber(claim[2]) or now
  local duration = now - started
  if duration < 0 then duration = 0 end
  append(P, id, started, 'attempt', tonumber(claim[1]) or 0, duration, outcome, claim[3] or '', err)
end

-- Makes sure the delivery of the entry `fields` (`entry` of the queue `q`: 's' stream,
-- 'r' scheduled, 'd' dead) has a record, built from the entry in `state` if it has none (an
-- entry written by an older version). Its webhook id, or nil for an entry without one.
local function ensure_record(P, fields, entry, q, state, extra)
  local id = field(fields, 'id')
  if not id then return nil end
  local key = P .. 'd:' .. id
  if redis.call('EXISTS', key) == 1 then return id end
  local event_type = field(fields, 'type') or ''
  local group = group_of(event_type)
  local received = field(fields, 'recv') or '0'
  redis.call('HSET', key, 'id', id, 'type', event_type, 'grp', group,
    'ts', field(fields, 'ts') or '0', 'sig', field(fields, 'sig') or '',
    'recv', received, 'body', field(fields, 'body') or '', 'state', state,
    'a', field(fields, 'a') or '0', 'next', received, 'e', entry, 'q', q, 'seq', '0')
  local k, oat = field(fields, 'ok'), field(fields, 'oat')
  if k and oat then redis.call('HSET', key, 'ok', k, 'oat', oat) end
  set_fields(key, extra or {})
  index_add(P, id, state, event_type, group, received)
  redis.call('HSET', P .. 'types', event_type, group)
  return id
end

-- Deletes the record of `id`: its hash, history and index entries.
local function drop_record(P, id)
  local key = P .. 'd:' .. id
  local now = redis.call('HMGET', key, 'state', 'type', 'grp')
  if now[1] then index_rem(P, id, now[1], now[2] or '', now[3] or '') end
  redis.call('ZREM', P .. 'done-at', id)
  redis.call('DEL', key, P .. 'h:' .. id)
end

-- A queue entry's fields for the delivery on record `id` (its attempts `a`), or nil; a keyed
-- delivery's ordering key and occurred-at (`ok`, `oat`) with them.
local function entry_from_record(P, id, a)
  local d = redis.call('HMGET', P .. 'd:' .. id, 'type', 'ts', 'sig', 'recv', 'body', 'ok', 'oat')
  if not d[1] then return nil end
  local fields = {'id', id, 'type', d[1], 'ts', d[2] or '0', 'sig', d[3] or '', 'recv',
    d[4] or '0', 'body', d[5] or '', 'a', a}
  if d[6] and d[7] then
    fields[#fields + 1] = 'ok'
    fields[#fields + 1] = d[6]
    fields[#fields + 1] = 'oat'
    fields[#fields + 1] = d[7]
  end
  return fields
end

-- Ordering keys (issue 23), under the partition's prefix `P`: `k:newest` (hash: key -> newest
-- done occurred-at), `k:touched` (sorted set: key -> when its newest was last written, for the
-- purge), `k:running` (hash: key -> the stream entry of its running job), `k:w:<key>` (sorted
-- set: the key's waiting, running and retrying webhook ids by occurred-at, ties by id: its
-- first is the key's head), `k:held` (sorted set: webhook id -> received-at of the jobs held
-- back by their key, out of every stream until the key frees them).

-- Whether `k` is held by a running job other than `entry`: its entry still has a lease.
local function key_held(P, k, entry)
  local running = redis.call('HGET', P .. 'k:running', k)
  if not running or running == entry then return false end
  if redis.call('ZSCORE', P .. 'leases', running) then return true end
  return false
end

-- The first of `k`'s jobs in (occurred-at, webhook id) order, or nil.
local function key_head(P, k)
  return redis.call('ZRANGE', P .. 'k:w:' .. k, 0, 0)[1]
end

-- Holds back the entry `entry` (fields `fields`) of `stream` for its key: out of the stream,
-- not counted as an attempt, its record waiting (or retrying) as before, in `k:held`.
local function key_park(P, stream, group, entry, fields)
  local id = field(fields, 'id')
  redis.call('XACK', stream, group, entry)
  redis.call('XDEL', stream, entry)
  redis.call('ZREM', P .. 'leases', entry)
  if not id then return end
  ensure_record(P, fields, entry, 's', 'waiting')
  set_fields(P .. 'd:' .. id, {e = false, q = 'k'})
  redis.call('ZADD', P .. 'k:held', tonumber(field(fields, 'recv')) or 0, id)
end

-- Puts `k`'s head back into `stream` if it is held back and the key is free.
local function key_wake(P, stream, k)
  if key_held(P, k, nil) then return end
  local head = key_head(P, k)
  if not head then return end
  local rec = redis.call('HMGET', P .. 'd:' .. head, 'q', 'a')
  if rec[1] ~= 'k' then return end
  local fields = entry_from_record(P, head, rec[2] or '0')
  if not fields then return end
  local added = redis.call('XADD', stream, '*', unpack(fields))
  set_fields(P .. 'd:' .. head, {e = added, q = 's'})
  redis.call('ZREM', P .. 'k:held', head)
end

-- The end of the running state of the entry `entry` (fields `fields`) for its key: the key
-- freed, the job out of the key's jobs when `finished` (done, dead), and the key's head woken.
local function key_settled(P, stream, entry, fields, finished)
  local k = fields and field(fields, 'ok')
  if not k then return end
  if redis.call('HGET', P .. 'k:running', k) == entry then
    redis.call('HDEL', P .. 'k:running', k)
  end
  if finished then
    local id = field(fields, 'id')
    if id then redis.call('ZREM', P .. 'k:w:' .. k, id) end
  end
  key_wake(P, stream, k)
end

-- Gives a held entry back, due at once, its attempt not counted (release, abandon): a new entry
-- at the end of the stream, its record waiting again (retrying once an attempt counted), a
-- release's attempt in its history (`history`). 1 if given back.
local function give_back(P, stream, leases, group, entry, count, history)
  local fields = entry_fields(stream, entry)
  redis.call('XACK', stream, group, entry)
  redis.call('XDEL', stream, entry)
  redis.call('ZREM', leases, entry)
  if not fields then return 0 end
  local attempts = (tonumber(field(fields, 'a')) or 0) + tonumber(count) - 1
  if attempts < 0 then attempts = 0 end
  local added = redis.call('XADD', stream, '*', unpack(with(fields, {a = int(attempts)})))
  local id = ensure_record(P, fields, entry, 's', 'running')
  if id then
    local now = now_ms()
    if history then attempt_ended(P, id, now, 'released', nil) end
    local state = 'waiting'
    if attempts > 0 then state = 'retrying' end
    move(P, id, state, {a = int(attempts), next = int(now), e = added, q = 's'})
  end
  key_settled(P, stream, entry, fields, false)
  return 1
end
