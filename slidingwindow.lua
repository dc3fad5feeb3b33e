-- slidingwindow.lua: sliding window counter with optional lockout, one key,
-- integer microseconds.
--
-- Time is cut into fixed windows of one period, aligned on the Unix epoch. The
-- count over the rolling period ending now is estimated as
--   prev * rest / period + cur
-- where prev and cur are the counts of the previous and current fixed windows
-- and rest is the part of the current window still ahead (so the share of the
-- previous window that the rolling window still covers). A call of n is
-- admitted iff the estimate + n <= limit, tested as prev*rest <= (limit-cur-n)*period.
--
-- KEYS[1]  state: one integer, so Redis stores it int-encoded. >= 0: the
--          counts packed as ((w % span) * (limit+1) + prev) * (limit+1) + cur,
--          where w = now // period is the index of cur's window and span =
--          2^53 // (limit+1)^2 (>= 4) keeps the value an exact double; < 0:
--          locked until -value µs. Missing or unreadable: fresh. The TTL ends
--          two windows after the last write, so w % span is never ambiguous.
-- ARGV[1]  period in µs (integer >= 1)
-- ARGV[2]  limit (integer >= 1)
-- ARGV[3]  cost n (integer >= 0; 0 counts nothing and writes nothing)
-- ARGV[4]  block: lockout in µs after a denial (0 = none)
-- ARGV[5]  mode: "0" consume n; "1" peek: answer for n, write nothing;
--          "2" refund: give n back (never lifts a lock, never below fresh)
-- ARGV[6]  now in µs (tests only), or "" to use Redis TIME
-- Reply: {allowed 0|1, remaining, retry_after µs, reset_after µs, delay µs (0),
--         locked 0|1, lock_started 0|1}; integers only.
-- Writes: at most one SET with PX; the TTL ends when cur has left the previous window.
local period = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local block = tonumber(ARGV[4])
local mode = ARGV[5]
local write = mode == '0' and n > 0
local now = tonumber(ARGV[6])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local w = math.floor(now / period)
local elapsed = now - w * period
local rest = period - elapsed
local base = limit + 1
local span = math.floor(2^53 / (base * base))
local function pack(prev, cur)
  return string.format('%d', ((w % span) * base + prev) * base + cur)
end
local prev, cur = 0, 0
local v = tonumber(redis.call('GET', KEYS[1]) or '')
if v then
  if v < 0 then
    -- The key's TTL (set with every write) bounds a lock from a faster clock.
    local left = -v - now
    if left > 0 then
      return {0, 0, left, left, 0, 1, 0}
    end
  else
    local sc = v % base
    local sp = math.floor(v / base) % base
    local age = (w - math.floor(v / (base * base))) % span
    if age == 0 or age == span - 1 then
      -- The current window (or the next one, from a faster clock: keep its counts).
      prev, cur = sp, sc
    elseif age == 1 then
      prev = sc
    end
  end
end

if mode == '2' then
  -- Refund the current window first, then the previous one.
  local back = math.min(cur, n)
  cur = cur - back
  prev = math.max(0, prev - (n - back))
  local reset = 0
  if cur > 0 then reset = (w + 2) * period - now elseif prev > 0 then reset = rest end
  if reset > 0 then
    redis.call('SET', KEYS[1], pack(prev, cur), 'PX', math.ceil(reset / 1000))
  elseif v then
    redis.call('DEL', KEYS[1])
  end
  return {1, math.max(0, limit - cur - math.ceil(prev * rest / period)), 0, reset, 0, 0, 0}
end

local room = limit - cur - n
if prev * rest <= room * period then
  if write then
    -- Peek and n = 0 report the state as it is.
    cur = cur + n
    redis.call('SET', KEYS[1], pack(prev, cur), 'PX', math.ceil(((w + 2) * period - now) / 1000))
  end
  local reset = 0
  if cur > 0 then reset = (w + 2) * period - now elseif prev > 0 then reset = rest end
  return {1, math.max(0, limit - cur - math.ceil(prev * rest / period)), 0, reset, 0, 0, 0}
end
if block > 0 and write then
  redis.call('SET', KEYS[1], string.format('%d', -(now + block)), 'PX', math.ceil(block / 1000))
  return {0, 0, block, block, 0, 1, 1}
end

-- Denied: the earliest time the same call fits, never earlier.
local retry
if room >= 0 then
  -- Within this window, once enough of prev has slid out (prev > 0 here).
  local e = period - math.floor(room * period / prev)
  if prev * (period - e) > room * period then e = e + 1 end
  retry = e - elapsed
else
  -- In the next window, where cur becomes the previous count.
  local room2 = limit - n
  local e = 0
  if cur > room2 then
    e = period - math.floor(room2 * period / cur)
    if cur * (period - e) > room2 * period then e = e + 1 end
  end
  retry = rest + e
end
local reset = rest
if cur > 0 then reset = (w + 2) * period - now end
return {0, math.max(0, limit - cur - math.ceil(prev * rest / period)), retry, reset, 0, 0, 0}
