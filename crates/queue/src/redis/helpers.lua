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

-- Gives a held entry back, due at once, its attempt not counted (release, abandon): a new entry
-- at the end of the stream. 1 if given back.
local function give_back(stream, leases, group, entry, count)
  local fields = entry_fields(stream, entry)
  redis.call('XACK', stream, group, entry)
  redis.call('XDEL', stream, entry)
  redis.call('ZREM', leases, entry)
  if not fields then return 0 end
  local attempts = (tonumber(field(fields, 'a')) or 0) + tonumber(count) - 1
  if attempts < 0 then attempts = 0 end
  redis.call('XADD', stream, '*', unpack(with(fields, {a = int(attempts)})))
  return 1
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
