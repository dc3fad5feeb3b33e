-- slidingwindow.lua: sliding window counter with optional lockout, one key,
-- no TIME call.
--
-- Time is cut into fixed windows of one period P (ms), starting at the key's
-- first call. The count over the rolling period ending now is estimated as
--   prev * rest / P + cur
-- where prev and cur are the counts of the previous and current fixed windows
-- and rest is the part of the current window still ahead (so the share of the
-- previous window that the rolling window still covers). A call of n is
-- admitted iff the estimate + n <= limit, tested as prev*rest <= (limit-cur-n)*P.
--
-- The clock is the key's own expiry E (a Redis millisecond timestamp), which
-- is the end of the window after cur's: PTTL > P means cur's window is still
-- open with rest = PTTL - P; 0 < PTTL <= P means it has closed, cur is now
-- the previous count and rest = PTTL. An admission within the open window
-- costs two Redis calls (PTTL, INCRBY); the first call of a window, a denial
-- or a fresh start costs one more.
--
-- KEYS[1]  state: prev * (limit+1) + cur, a decimal integer, or LOCK (2^60)
--          while locked until the key expires. Missing, without TTL or
--          unreadable: fresh.
-- ARGV[1]  P: the period in ms (integer >= 1), in hexadecimal
-- ARGV[2]  limit (integer >= 1), in hexadecimal (tonumber with a base skips
--          strtod, a tenth of an admission's cost)
-- ARGV[3]  n: the call's cost (0 <= n <= limit), or absent for 1
-- ARGV[4]  block: lockout in ms after a denial, or "" for none
-- ARGV[5]  mode: "" or absent consume; "p" peek: answer, write nothing;
--          "r" refund: give n back (never lifts a lock, never below fresh)
-- ARGV[6]  PTTL to use instead of asking Redis (tests only), or absent
-- Reply:   the window as the call leaves it (peek, denial: as it found it):
--          v = prev * (limit+1) + cur and rest (ms), as one integer
--          rest * (limit+1)^2 + v when (P+1) * (limit+1)^2 < 2^53, and -1 -
--          that when denied; else as the string "v rest", with v written
--          -1 - v when denied.
--          While locked: {rest of the lock in µs, 1 if this call started it
--          else 0}.
-- Writes:  the TTL is E, at most two periods ahead.
local K = KEYS[1]
local P = tonumber(ARGV[1], 16)
local limit = tonumber(ARGV[2], 16)
local ns = ARGV[3] or '1'
local n = 1
if ARGV[3] then n = tonumber(ns) end
local mode = ARGV[5]
if mode == '' then mode = nil end
local p = tonumber(ARGV[6]) or redis.call('PTTL', K)
local base = limit + 1
local LOCK = 576460752303423488 -- 2^59: values at or above it are locks

local x
if p > P and mode == nil then
  x = redis.pcall('INCRBY', K, ns)
  if type(x) ~= 'number' then p = 0 end
elseif p > 0 then
  x = tonumber(redis.pcall('GET', K))
  if not x then p = 0 end
end
-- The reply: whether admitted, the counts v and the ms left in the window.
local ok, v, rest = true, 0, 0
if p <= 0 then
  -- Fresh: a window starts now.
  if mode == nil then
    redis.call('SET', K, ns, 'PX', string.format('%d', 2 * P))
    v, rest = n, P
  end
elseif x >= LOCK then
  if mode == nil and p > P then redis.call('DECRBY', K, ns) end
  return {1000 * p, 0}
else
  if p > 2 * P then
    -- On one clock PTTL <= 2P. More means the expiry came from a faster clock
    -- (a promoted replica's): the current window opens now on this clock.
    p = 2 * P
    if mode ~= 'p' then redis.call('PEXPIRE', K, string.format('%d', p)) end
  end
  if p > P then
    -- cur's window is open. Without mode, x already counts this call.
    rest = p - P
    if mode == nil then x = x - n end
    local cur = x % base
    local prev = (x - cur) / base
    if mode == 'r' then
      local back = math.min(cur, n)
      prev = math.max(0, prev - (n - back))
      v = prev * base + cur - back
      if v == 0 then
        redis.call('DEL', K)
      elseif v ~= x then
        redis.call('INCRBY', K, string.format('%d', v - x))
      end
    elseif prev * rest <= (limit - cur - n) * P then
      v = x
      if mode == nil then v = x + n end
    else
      if mode == nil then redis.call('DECRBY', K, ns) end
      ok, v = false, x
    end
  else
    -- cur's window has closed: this is the next one, with prev = the old cur.
    rest = p
    local prev = x % base
    if mode == 'r' then
      local left = math.max(0, prev - n)
      if left == 0 then
        redis.call('DEL', K)
      elseif left ~= prev then
        redis.call('INCRBY', K, string.format('%d', left - prev))
      end
      v = left * base
    elseif prev * p <= (limit - n) * P then
      v = prev * base
      if mode == nil then
        v = v + n
        redis.call('SET', K, string.format('%d', v), 'PX', string.format('%d', p + P))
      end
    else
      ok, v = false, prev * base
    end
  end
end
if not ok and mode == nil then
  local block = ARGV[4]
  if block and block ~= '' then
    redis.call('SET', K, '1152921504606846976', 'PX', block)
    return {1000 * tonumber(block), 1}
  end
end
if (P + 1) * base * base < 9007199254740992 then
  local r = rest * base * base + v
  if ok then return r end
  return -1 - r
end
-- Too wide for one integer: a string (a table costs Redis a fifth more).
if not ok then v = -1 - v end
return string.format('%d %d', v, rest)
