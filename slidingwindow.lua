-- slidingwindow.lua: sliding window counters, one or more rates checked at
-- once, with an optional lockout. No TIME call.
--
-- Time is cut into fixed windows of one period P (ms), starting at the key's
-- first call. The count over the rolling period ending now is estimated as
--   prev * rest / P + cur
-- where prev and cur are the counts of the previous and current fixed windows
-- and rest is the part of the current window still ahead (so the share of the
-- previous window that the rolling window still covers). A call of n is
-- admitted by a rate iff the estimate + n <= limit, tested as
-- prev*rest <= (limit-cur-n)*P, and admitted iff every rate admits it; it is
-- then counted in every rate, and a call that one rate denies in none.
--
-- The clock is the key's own expiry E (a Redis millisecond timestamp), which
-- is the end of the window after cur's: PTTL > P means cur's window is still
-- open with rest = PTTL - P; 0 < PTTL <= P means it has closed, cur is now
-- the previous count and rest = PTTL.
--
-- KEYS[1]  lock: exists (any value) while the identity is locked out; its
--          PTTL is the rest of the lock. Read first; a locked call writes
--          nothing, and the rates' counts are kept under the lock.
-- KEYS[1+i] rate i's state: prev * 2^26 + cur, a decimal integer (the base
--          does not depend on the limit, so a limit change reads the same
--          counts; counts above the limit read as the limit). Missing,
--          without TTL, unreadable or out of range: fresh.
-- ARGV[1]  mode: "" consume; "p" peek: answer, write nothing; "r" refund:
--          give n back (never lifts a lock, never below fresh)
-- ARGV[2]  n: the call's cost (>= 1; peek, refund: >= 0)
-- ARGV[3]  block: lockout in ms after a denial, or "" for none
-- ARGV[2+2i], ARGV[3+2i]: rate i's period P in ms and limit. Every number
--          is hexadecimal (tonumber with a base skips strtod).
-- Reply:   per rate, the window as the call leaves it (peek, denial: as it
--          found it): v = prev * (limit+1) + cur and rest (ms), as one
--          integer rest * (limit+1)^2 + v when (P+1) * (limit+1)^2 < 2^53,
--          and -1 - that when the rate denies; else as the string "v rest",
--          with v written -1 - v when the rate denies. One rate: that reply;
--          several: a table of them. Locked: {"lock", rest of the lock in µs,
--          1 if this call started it else 0}.
-- Writes:  a rate's TTL is E, at most two periods ahead; the lock's TTL is
--          the lockout.
local mode, block = ARGV[1], ARGV[3]
local n = tonumber(ARGV[2], 16)
local k = #KEYS - 1
local B = 67108864 -- 2^26, above every allowed limit

local lp = redis.call('PTTL', KEYS[1])
if lp > 0 then return {'lock', 1000 * lp, 0} end
-- n in decimal for INCRBY and SET: below 10, its hexadecimal is the same.
local ns = ARGV[2]
if n > 9 then ns = string.format('%d', n) end

-- One rate, consuming: the common call, without the tables of the general
-- path below (the same steps, in the same order, for k = 1).
if k == 1 and mode == '' then
  local K = KEYS[2]
  local P, limit = tonumber(ARGV[4], 16), tonumber(ARGV[5], 16)
  local pi = redis.call('PTTL', K)
  local xi, inc = 0, false
  if pi > 0 then
    -- An optimistic INCRBY reads the count as a number (no string to
    -- parse) and is the write of the common call; undone if denied.
    xi = redis.pcall('INCRBY', K, ns)
    if type(xi) == 'number' then xi, inc = xi - n, true else xi = -1 end
    if xi < 0 or xi >= B * B then pi, xi = 0, 0 end
  else
    pi = 0
  end
  if pi > 2 * P then
    pi = 2 * P
    redis.call('PEXPIRE', K, string.format('%d', pi))
  end
  local pv, cv = 0, 0
  if pi > P then
    cv = xi % B
    pv = (xi - cv) / B
  elseif pi > 0 then
    pv = xi % B
  end
  if pv > limit then pv = limit end
  if cv > limit then cv = limit end
  local rest = pi
  if pi > P then rest = pi - P end
  local fits
  if pi == 0 then fits = n <= limit else fits = pv * rest <= (limit - cv - n) * P end
  if fits then
    if pi == 0 then
      redis.call('SET', K, ns, 'PX', string.format('%d', 2 * P))
      cv, rest = n, P
    elseif pi > P then
      cv = cv + n -- counted by the INCRBY
    else
      redis.call('SET', K, string.format('%d', pv * B + n), 'PX', string.format('%d', pi + P))
      cv = n
    end
  elseif inc then
    redis.call('DECRBY', K, ns)
  end
  if not fits and block ~= '' then
    local ms = tonumber(block, 16)
    redis.call('SET', KEYS[1], '1', 'PX', string.format('%d', ms))
    return {'lock', 1000 * ms, 1}
  end
  local base = limit + 1
  local v = pv * base + cv
  if (P + 1) * base * base < 9007199254740992 then
    local r = rest * base * base + v
    if fits then return r end
    return -1 - r
  end
  if not fits then v = -1 - v end
  return string.format('%d %d', v, rest)
end

-- Two rates, consuming (a burst and a quota, the common policy): the
-- general path below, unrolled. It reads both rates as the one-rate path
-- reads one, then writes as the general path does: both counted when both
-- admit, else both INCRBYs undone. Unrolled, the second rate adds 1.9µs to
-- one rate's 2.9µs, against 3.0µs through the loop's tables (Redis 7.0, 64
-- clients, keys in use). The two rates' reads, writes and replies are
-- written out rather than a local function, as in tokenbucket.lua: a
-- closure and its calls cost 0.1µs per call there.
if k == 2 and mode == '' then
  local K1, K2 = KEYS[2], KEYS[3]
  local P1, l1 = tonumber(ARGV[4], 16), tonumber(ARGV[5], 16)
  local P2, l2 = tonumber(ARGV[6], 16), tonumber(ARGV[7], 16)
  local p1, x1, i1 = redis.call('PTTL', K1), 0, false
  if p1 > 0 then
    x1 = redis.pcall('INCRBY', K1, ns)
    if type(x1) == 'number' then x1, i1 = x1 - n, true else x1 = -1 end
    if x1 < 0 or x1 >= B * B then p1, x1 = 0, 0 end
  else
    p1 = 0
  end
  if p1 > 2 * P1 then
    p1 = 2 * P1
    redis.call('PEXPIRE', K1, string.format('%d', p1))
  end
  local p2, x2, i2 = redis.call('PTTL', K2), 0, false
  if p2 > 0 then
    x2 = redis.pcall('INCRBY', K2, ns)
    if type(x2) == 'number' then x2, i2 = x2 - n, true else x2 = -1 end
    if x2 < 0 or x2 >= B * B then p2, x2 = 0, 0 end
  else
    p2 = 0
  end
  if p2 > 2 * P2 then
    p2 = 2 * P2
    redis.call('PEXPIRE', K2, string.format('%d', p2))
  end
  local pv1, cv1, pv2, cv2 = 0, 0, 0, 0
  if p1 > P1 then
    cv1 = x1 % B
    pv1 = (x1 - cv1) / B
  elseif p1 > 0 then
    pv1 = x1 % B
  end
  if p2 > P2 then
    cv2 = x2 % B
    pv2 = (x2 - cv2) / B
  elseif p2 > 0 then
    pv2 = x2 % B
  end
  if pv1 > l1 then pv1 = l1 end
  if cv1 > l1 then cv1 = l1 end
  if pv2 > l2 then pv2 = l2 end
  if cv2 > l2 then cv2 = l2 end
  local r1, r2 = p1, p2
  if p1 > P1 then r1 = p1 - P1 end
  if p2 > P2 then r2 = p2 - P2 end
  local f1, f2
  if p1 == 0 then f1 = n <= l1 else f1 = pv1 * r1 <= (l1 - cv1 - n) * P1 end
  if p2 == 0 then f2 = n <= l2 else f2 = pv2 * r2 <= (l2 - cv2 - n) * P2 end
  if f1 and f2 then
    if p1 == 0 then
      redis.call('SET', K1, ns, 'PX', string.format('%d', 2 * P1))
      cv1, r1 = n, P1
    elseif p1 > P1 then
      cv1 = cv1 + n -- counted by the INCRBY
    else
      redis.call('SET', K1, string.format('%d', pv1 * B + n), 'PX', string.format('%d', p1 + P1))
      cv1 = n
    end
    if p2 == 0 then
      redis.call('SET', K2, ns, 'PX', string.format('%d', 2 * P2))
      cv2, r2 = n, P2
    elseif p2 > P2 then
      cv2 = cv2 + n
    else
      redis.call('SET', K2, string.format('%d', pv2 * B + n), 'PX', string.format('%d', p2 + P2))
      cv2 = n
    end
  else
    -- Denied: nothing counted; each rate answers as found.
    if i1 then redis.call('DECRBY', K1, ns) end
    if i2 then redis.call('DECRBY', K2, ns) end
    if block ~= '' then
      local ms = tonumber(block, 16)
      redis.call('SET', KEYS[1], '1', 'PX', string.format('%d', ms))
      return {'lock', 1000 * ms, 1}
    end
  end
  local out = {0, 0}
  local base = l1 + 1
  local v = pv1 * base + cv1
  if (P1 + 1) * base * base < 9007199254740992 then
    v = r1 * base * base + v
    if not f1 then v = -1 - v end
    out[1] = v
  else
    if not f1 then v = -1 - v end
    out[1] = string.format('%d %d', v, r1)
  end
  base = l2 + 1
  v = pv2 * base + cv2
  if (P2 + 1) * base * base < 9007199254740992 then
    v = r2 * base * base + v
    if not f2 then v = -1 - v end
    out[2] = v
  else
    if not f2 then v = -1 - v end
    out[2] = string.format('%d %d', v, r2)
  end
  return out
end

-- Read every rate: x the stored value, p its PTTL (0: fresh), prev and cur
-- the counts capped at the limit, and whether the call fits.
-- Consuming, the read is an optimistic INCRBY as above (inc: it happened),
-- undone if the call is denied. The tables are built at their size for two
-- rates: growing them costs more than the rest of the loop.
local x, p, prev, cur, inc, ok = {0, 0}, {0, 0}, {0, 0}, {0, 0}, {false, false}, true
for i = 1, k do
  local K = KEYS[1 + i]
  local P, limit = tonumber(ARGV[2 + 2 * i], 16), tonumber(ARGV[3 + 2 * i], 16)
  local pi = redis.call('PTTL', K)
  local xi = 0
  inc[i] = false
  if pi > 0 then
    if mode == '' then
      xi = redis.pcall('INCRBY', K, ns)
      if type(xi) == 'number' then xi, inc[i] = xi - n, true else xi = -1 end
    else
      xi = tonumber(redis.pcall('GET', K))
    end
    if not xi or xi < 0 or xi >= B * B or xi % 1 ~= 0 then pi, xi = 0, 0 end
  else
    pi = 0
  end
  if pi > 2 * P then
    -- On one clock PTTL <= 2P. More means the expiry came from a faster clock
    -- (a promoted replica's): the current window opens now on this clock.
    pi = 2 * P
    if mode ~= 'p' then redis.call('PEXPIRE', K, string.format('%d', pi)) end
  end
  local pv, cv = 0, 0
  if pi > P then
    cv = xi % B
    pv = (xi - cv) / B
  elseif pi > 0 then
    pv = xi % B
  end
  pv, cv = math.min(pv, limit), math.min(cv, limit)
  x[i], p[i], prev[i], cur[i] = xi, pi, pv, cv
  if mode ~= 'r' then
    local rest = pi
    if pi > P then rest = pi - P end
    if pi == 0 then
      if n > limit then ok = false end
    elseif pv * rest > (limit - cv - n) * P then
      ok = false
    end
  end
end

if not ok and mode == '' then
  for i = 1, k do
    if inc[i] then redis.call('DECRBY', KEYS[1 + i], ns) end
  end
end
if not ok and mode == '' and block ~= '' then
  local ms = tonumber(block, 16)
  redis.call('SET', KEYS[1], '1', 'PX', string.format('%d', ms))
  return {'lock', 1000 * ms, 1}
end

local out = {0, 0}
for i = 1, k do
  local K = KEYS[1 + i]
  local P, limit = tonumber(ARGV[2 + 2 * i], 16), tonumber(ARGV[3 + 2 * i], 16)
  local base = limit + 1
  local pi, xi, pv, cv = p[i], x[i], prev[i], cur[i]
  local fits, rest = ok, pi
  if pi > P then rest = pi - P end
  if mode == 'r' then
    if pi > P then
      local back = math.min(cv, n)
      pv = math.max(0, pv - (n - back))
      cv = cv - back
      local v = pv * B + cv
      if v == 0 then
        redis.call('DEL', K)
      elseif v ~= xi then
        redis.call('INCRBY', K, string.format('%d', v - xi))
      end
    elseif pi > 0 then
      local left = math.max(0, pv - n)
      if left == 0 then
        redis.call('DEL', K)
      elseif left ~= xi % B then
        redis.call('INCRBY', K, string.format('%d', left - xi % B))
      end
      pv = left
    end
  else
    if mode == 'p' or not ok then
      -- As found; a rate that would admit the call still says so.
      if pi == 0 then
        fits = n <= limit
      else
        fits = pv * rest <= (limit - cv - n) * P
      end
    elseif pi == 0 then
      -- Fresh: a window starts now.
      redis.call('SET', K, ns, 'PX', string.format('%d', 2 * P))
      cv, rest = n, P
    elseif pi > P then
      cv = cv + n -- counted by the INCRBY
    else
      -- cur's window has closed: this is the next one, with prev = the old cur.
      redis.call('SET', K, string.format('%d', pv * B + n), 'PX', string.format('%d', pi + P))
      cv = n
    end
  end
  local v = pv * base + cv
  if (P + 1) * base * base < 9007199254740992 then
    local r = rest * base * base + v
    if fits then out[i] = r else out[i] = -1 - r end
  else
    -- Too wide for one integer: a string (a table costs Redis a fifth more).
    if not fits then v = -1 - v end
    out[i] = string.format('%d %d', v, rest)
  end
end
if k == 1 then return out[1] end
return out
