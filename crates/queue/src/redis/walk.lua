-- The record's lists: index sorted sets walked newest first (by received-at, then webhook id,
-- which is the order of a sorted set's members at one score) from a keyset cursor, merged.

-- Whether `a` sorts before `b` byte by byte (Lua's `<` on strings follows the locale's
-- collation, sorted sets compare bytes).
local function bytes_before(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

-- Whether (a_ms, a_id) comes before (b_ms, b_id), newest first.
local function newer(a, b)
  if a[1] ~= b[1] then return a[1] > b[1] end
  return bytes_before(b[2], a[2])
end

local CHUNK = 500

-- Walks `key` newest first, from after the cursor (`cms`, `cid`; nil for the first page),
-- within [lo, hi) (nil: unbounded), keeping the members that start with `prefix` and that
-- `keep(ms, id)` keeps (nil: all), until `want` are kept or the budget (`budget.left` members
-- read, shared by the walks) is spent. Returns the kept {ms, id}, and the last one read when
-- the budget stopped it.
local function walk(key, want, lo, hi, cms, cid, prefix, budget, keep)
  local kept = {}
  if want <= 0 then return kept, nil end
  local min, max = '-inf', '+inf'
  if lo then min = int(lo) end
  if hi then max = '(' .. int(hi) end
  local function read(ms, id)
    budget.left = budget.left - 1
    if (prefix == '' or string.sub(id, 1, #prefix) == prefix) and (not keep or keep(ms, id)) then
      kept[#kept + 1] = {ms, id}
    end
  end
  if cms then
    if lo and cms < lo then return kept, nil end
    if not hi or cms < hi then
      -- The members at the cursor's ms after its id: those before it, byte by byte.
      local offset = 0
      while true do
        local got = redis.call('ZREVRANGEBYSCORE', key, int(cms), int(cms), 'LIMIT', offset, CHUNK)
        for _, id in ipairs(got) do
          if bytes_before(id, cid) then read(cms, id) else budget.left = budget.left - 1 end
          if #kept >= want then return kept, nil end
          if budget.left <= 0 then return kept, {cms, id} end
        end
        if #got < CHUNK then break end
        offset = offset + CHUNK
      end
      max = '(' .. int(cms)
    end
  end
  local offset = 0
  while true do
    local got = redis.call('ZREVRANGEBYSCORE', key, max, min, 'WITHSCORES', 'LIMIT', offset, CHUNK)
    for i = 1, #got, 2 do
      local id, ms = got[i], tonumber(got[i + 1])
      read(ms, id)
      if #kept >= want then return kept, nil end
      if budget.left <= 0 then return kept, {ms, id} end
    end
    if #got < 2 * CHUNK then break end
    offset = offset + CHUNK
  end
  return kept, nil
end

-- Whether the delivery `id` of prefix `P`, received at `ms`, was received at least
-- `min_delay` ms after its event occurred (its record's `occ`; one without is not).
local function delayed(P, id, ms, min_delay)
  local occ = tonumber(redis.call('HGET', P .. 'd:' .. id, 'occ'))
  return occ ~= nil and ms - occ >= min_delay
end

-- The first `want` deliveries of the indexes `keys` (newest first, after the cursor, within
-- [lo, hi), ids starting with `prefix`, or only `exact`; with `min_delay` (ms, nil for none)
-- only those received at least that long after their event occurred, read from the records
-- of prefix `P`: no index holds the delay), and where the budget stopped the walks (nil if it
-- did not): the last member read, so nothing after it is returned.
local function select_deliveries(keys, want, lo, hi, cms, cid, prefix, exact, budget_left, P,
                                 min_delay)
  local all, stop = {}, nil
  local keep = nil
  if min_delay then keep = function(ms, id) return delayed(P, id, ms, min_delay) end end
  if exact then
    for _, key in ipairs(keys) do
      local score = tonumber(redis.call('ZSCORE', key, exact))
      if score and (not lo or score >= lo) and (not hi or score < hi)
        and (not cms or newer({cms, cid}, {score, exact}))
        and (not keep or keep(score, exact)) then
        all[#all + 1] = {score, exact}
      end
    end
  else
    local budget = {left = budget_left}
    for _, key in ipairs(keys) do
      local kept, stopped = walk(key, want, lo, hi, cms, cid, prefix, budget, keep)
      for _, one in ipairs(kept) do all[#all + 1] = one end
      if stopped and (not stop or newer(stopped, stop)) then stop = stopped end
      if budget.left <= 0 then
        -- The walks not taken yet stop at the top: nothing of theirs can be returned, so the
        -- page ends where the first walk reached, and the next page goes on from there.
        budget.left = 0
      end
    end
  end
  table.sort(all, newer)
  local out = {}
  for _, one in ipairs(all) do
    if #out >= want then break end
    if stop and newer(stop, one) then break end
    out[#out + 1] = one
  end
  return out, stop
end

-- A number argument, or nil for ''.
local function opt_number(value)
  if value == nil or value == '' then return nil end
  return tonumber(value)
end
