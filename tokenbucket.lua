-- tokenbucket.lua: GCRA buckets (TokenBucket, and LeakyBucket, which runs
-- this same code: see leakybucket.lua), one or more rates checked at once,
-- with an optional lockout. No TIME call.
--
-- Each rate's bucket is kept in GCRA form: the theoretical arrival time TAT,
-- and the debt d = TAT - now (µs) the bucket lacks from full, so tokens left
-- = (cap - d) / interval. The clock is the key's own expiry E (a Redis
-- millisecond timestamp): the stored integer is o = TAT - 1000*E, and PTTL
-- gives E - now, so d = o + 1000*PTTL, on Redis's millisecond clock. A call
-- is admitted iff it fits in every rate (d + c <= cap for each), and is then
-- charged to every rate; a call that one rate denies is charged to none.
--
-- KEYS[1]  lock: exists (any value) while the identity is locked out; its
--          PTTL is the rest of the lock. Read first; a locked call writes
--          nothing, and the rates' state is kept under the lock.
-- KEYS[1+i] rate i's state: o, a decimal integer (<= 0 at rest, so the key
--          outlives TAT). Missing, without TTL, unreadable or out of range:
--          fresh (d < 0) or, above cap, a full debt (never a free pass).
-- ARGV[1]  mode: "" consume; "p" peek: answer, write nothing; "r" refund:
--          give the cost back (never lifts a lock, never below fresh)
-- ARGV[2]  n: the call's cost in events (>= 1; peek, refund: >= 0)
-- ARGV[3]  block: lockout in ms after a denial, or "" for none
-- ARGV[2+2i], ARGV[3+2i]: rate i's interval and cap (Burst * interval), in
--          µs. Every number is hexadecimal (tonumber with a base skips
--          strtod, a tenth of an admission's cost).
-- Reply:   one rate: an integer, the debt before the call (refund: after
--          it) clamped to [0, cap], or -1 - that when the rate denies.
--          Several rates: a table of those integers, one per rate.
--          Locked: {"lock", rest of the lock in µs, 1 if this call started
--          it else 0}.
-- Writes:  a rate's TTL is E, TAT + cap/16 (rounded up to the ms) when E
--          last moved: the key outlives its state by at most a sixteenth of
--          a refill, and E moves at most once per cap/16 of time;
--          the lock's TTL is the lockout.
local mode, block = ARGV[1], ARGV[3]
local n = tonumber(ARGV[2], 16)
local k = #KEYS - 1

local lp = redis.call('PTTL', KEYS[1])
if lp > 0 then return {'lock', 1000 * lp, 0} end

-- One rate, consuming: the common call, without the tables of the general
-- path below (the same steps, in the same order, for k = 1).
if k == 1 and mode == '' then
  local K = KEYS[2]
  local iv, cap = tonumber(ARGV[4], 16), tonumber(ARGV[5], 16)
  local c = n * iv
  local cs = string.format('%d', c)
  local pi = redis.call('PTTL', K)
  local raw, x = -1, nil
  if pi > 0 then
    local v = redis.pcall('INCRBY', K, cs)
    if type(v) == 'number' then x, v = v, v - c else v = nil end
    if v and (v > 4503599627370496 or v < -4503599627370496) then v, x = nil, nil end
    if v then raw = v + 1000 * pi end
  else
    pi = 0
  end
  local d = raw
  if d > cap then d = cap end
  local di = d
  if di < 0 then di = 0 end
  if di + c <= cap then
    if d < 0 then
      if x and 1000 * pi >= c then
        redis.call('INCRBY', K, string.format('%d', c - 1000 * pi - x))
      else
        local ms = math.ceil((c + math.ceil(cap / 16)) / 1000)
        redis.call('SET', K, string.format('%d', c - 1000 * ms), 'PX', string.format('%d', ms))
      end
    elseif x > 0 then
      local ms = math.ceil((x + math.ceil(cap / 16)) / 1000)
      redis.call('SET', K, string.format('%d', x - 1000 * ms), 'PX', string.format('%d', pi + ms))
    end
    return di
  end
  if raw > cap then
    local ms = math.ceil((cap + math.ceil(cap / 16)) / 1000)
    redis.call('SET', K, string.format('%d', cap - 1000 * ms), 'PX', string.format('%d', ms))
  elseif x then
    redis.call('DECRBY', K, cs)
  end
  if block ~= '' then
    local ms = tonumber(block, 16)
    redis.call('SET', KEYS[1], '1', 'PX', string.format('%d', ms))
    return {'lock', 1000 * ms, 1}
  end
  return -1 - di
end

-- Several rates, consuming: each rate read with an optimistic INCRBY, as
-- above, then, only where needed, undone (a denial) or fixed (fresh, or TAT
-- past the expiry). s holds rate i's c, cap, PTTL, raw debt and value after
-- the INCRBY (false: none) at s[5i-4 .. 5i]. Two rates (a burst and a
-- quota, the common policy) are read unrolled, and an admission that needs
-- no other write returns before building s: the loop and its tables cost
-- 0.3µs, a seventh of what a second rate added (Redis 7.0, 64 clients).
-- The two reads are written out, not a local function: its closure and
-- calls cost 0.1µs of those 0.3.
-- More rates take the loop, with the tables built at their size for two
-- (growing them costs more than the rest of the loop).
if mode == '' then
  local s, out, ok, fix
  if k == 2 then
    local K1, K2 = KEYS[2], KEYS[3]
    local c1, cap1 = n * tonumber(ARGV[4], 16), tonumber(ARGV[5], 16)
    local c2, cap2 = n * tonumber(ARGV[6], 16), tonumber(ARGV[7], 16)
    local p1, r1, x1 = redis.call('PTTL', K1), -1, false
    if p1 > 0 then
      local v = redis.pcall('INCRBY', K1, string.format('%d', c1))
      if type(v) == 'number' then
        v = v - c1
        if v <= 4503599627370496 and v >= -4503599627370496 then x1, r1 = v + c1, v + 1000 * p1 end
      end
    else
      p1 = 0
    end
    local p2, r2, x2 = redis.call('PTTL', K2), -1, false
    if p2 > 0 then
      local v = redis.pcall('INCRBY', K2, string.format('%d', c2))
      if type(v) == 'number' then
        v = v - c2
        if v <= 4503599627370496 and v >= -4503599627370496 then x2, r2 = v + c2, v + 1000 * p2 end
      end
    else
      p2 = 0
    end
    local d1, d2 = r1, r2
    if d1 > cap1 then d1 = cap1 end
    if d1 < 0 then d1 = 0 end
    if d2 > cap2 then d2 = cap2 end
    if d2 < 0 then d2 = 0 end
    ok = true
    if d1 + c1 > cap1 then d1, ok = -1 - d1, false end
    if d2 + c2 > cap2 then d2, ok = -1 - d2, false end
    -- r >= 0 only where x was read, so x is a number there.
    if ok and r1 >= 0 and x1 <= 0 and r2 >= 0 and x2 <= 0 then return {d1, d2} end
    s, out, fix = {c1, cap1, p1, r1, x1, c2, cap2, p2, r2, x2}, {d1, d2}, true
  else
    s, out, ok, fix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, {0, 0}, true, false
    for i = 1, k do
      local K = KEYS[1 + i]
      local c, cap = n * tonumber(ARGV[2 + 2 * i], 16), tonumber(ARGV[3 + 2 * i], 16)
      local pi = redis.call('PTTL', K)
      local raw, x = -1, false
      if pi > 0 then
        local v = redis.pcall('INCRBY', K, string.format('%d', c))
        if type(v) == 'number' then
          -- Beyond 2^52 the arithmetic is no longer exact: unreadable.
          v = v - c
          if v <= 4503599627370496 and v >= -4503599627370496 then x, raw = v + c, v + 1000 * pi end
        end
      else
        pi = 0
      end
      -- On one clock d <= cap; more means the expiry came from a faster
      -- clock (a promoted replica's) or a rate whose Burst shrank: read as
      -- a full debt.
      local d = raw
      if d > cap then d = cap end
      if d < 0 then d = 0 end
      if d + c <= cap then out[i] = d else out[i], ok = -1 - d, false end
      if raw < 0 or not x or x > 0 then fix = true end
      local j = 5 * i
      s[j - 4], s[j - 3], s[j - 2], s[j - 1], s[j] = c, cap, pi, raw, x
    end
  end
  if fix or not ok then
    for i = 1, k do
      local K, j = KEYS[1 + i], 5 * i
      local c, cap, pi, raw, x = s[j - 4], s[j - 3], s[j - 2], s[j - 1], s[j]
      if not ok then
        if raw > cap then
          -- Rewrite the full debt on this clock.
          local ms = math.ceil((cap + math.ceil(cap / 16)) / 1000)
          redis.call('SET', K, string.format('%d', cap - 1000 * ms), 'PX', string.format('%d', ms))
        elseif x then
          redis.call('DECRBY', K, string.format('%d', c))
        end
      elseif raw < 0 then
        -- Fresh, or full again: TAT = now + c.
        if x and 1000 * pi >= c then
          redis.call('INCRBY', K, string.format('%d', c - 1000 * pi - x))
        else
          local ms = math.ceil((c + math.ceil(cap / 16)) / 1000)
          redis.call('SET', K, string.format('%d', c - 1000 * ms), 'PX', string.format('%d', ms))
        end
      elseif x > 0 then
        -- TAT passed the expiry: move the expiry to TAT + cap/16.
        local ms = math.ceil((x + math.ceil(cap / 16)) / 1000)
        redis.call('SET', K, string.format('%d', x - 1000 * ms), 'PX', string.format('%d', pi + ms))
      end
    end
  end
  if not ok and block ~= '' then
    local ms = tonumber(block, 16)
    redis.call('SET', KEYS[1], '1', 'PX', string.format('%d', ms))
    return {'lock', 1000 * ms, 1}
  end
  return out
end

-- Peek and refund: read every rate; raw is the debt as read (< 0: fresh), d
-- raw capped at cap.
local d, raw, p = {}, {}, {}
for i = 1, k do
  local K = KEYS[1 + i]
  local cap = tonumber(ARGV[3 + 2 * i], 16)
  local pi = redis.call('PTTL', K)
  local di = -1
  if pi > 0 then
    local v = tonumber(redis.pcall('GET', K))
    if v and (v > 4503599627370496 or v < -4503599627370496) then v = nil end
    if v then di = v + 1000 * pi end
  else
    pi = 0
  end
  p[i], raw[i], d[i] = pi, di, math.min(di, cap)
end

local out = {0, 0}
for i = 1, k do
  local K = KEYS[1 + i]
  local iv, cap = tonumber(ARGV[2 + 2 * i], 16), tonumber(ARGV[3 + 2 * i], 16)
  local di = math.max(d[i], 0)
  if mode == 'r' then
    if p[i] > 0 and raw[i] >= 0 then
      local after = math.max(di - n * iv, 0)
      if after == 0 then
        redis.call('DEL', K)
      elseif after ~= raw[i] then
        redis.call('INCRBY', K, string.format('%d', after - raw[i]))
      end
      di = after
    end
    out[i] = di
  elseif di + n * iv <= cap then
    out[i] = di
  else
    out[i] = -1 - di
  end
end
if k == 1 then return out[1] end
return out
