-- leakybucket.lua: leaky bucket (meter and queue, like nginx limit_req) with
-- optional lockout, one key, integer microseconds.
--
-- The level drains at one unit per interval. The state is the time the bucket
-- will be empty (the level in µs of draining, plus now), so the level at time
-- now = (empty_at - now) / interval. A call of n is admitted iff level + n <=
-- burst; its delay is the time the queue ahead of it takes to drain.
--
-- KEYS[1]  state: a decimal integer. >= 0: empty_at in µs since the Unix epoch;
--          < 0: the key is locked until -value µs. Missing or unreadable: empty.
-- ARGV[1]  interval: µs to drain one unit (integer >= 1)
-- ARGV[2]  burst: capacity in units (integer >= 1)
-- ARGV[3]  cost n (integer >= 0; 0 adds nothing and writes nothing)
-- ARGV[4]  block: lockout in µs after a denial (0 = none)
-- ARGV[5]  mode: "0" consume n; "1" peek: answer for n, write nothing;
--          "2" refund: give n back (never lifts a lock, never below fresh)
-- ARGV[6]  now in µs (tests only), or "" to use Redis TIME
-- Reply: {allowed 0|1, remaining, retry_after µs, reset_after µs, delay µs,
--         locked 0|1, lock_started 0|1}; integers only.
-- Writes: at most one SET with PX; the TTL is the time until the bucket is empty.
local interval = tonumber(ARGV[1])
local cap = tonumber(ARGV[2]) * interval
local n = tonumber(ARGV[3])
local block = tonumber(ARGV[4])
local mode = ARGV[5]
local write = mode == '0' and n > 0
local now = tonumber(ARGV[6])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local level = 0
local v = tonumber(redis.call('GET', KEYS[1]) or '')
if v then
  if v < 0 then
    -- The key's TTL (set with every write) bounds a lock from a faster clock.
    local left = -v - now
    if left > 0 then
      return {0, 0, left, left, 0, 1, 0}
    end
  elseif v > now then
    level = math.min(v - now, cap)
  end
end

if mode == '2' then
  local left = math.max(0, level - n * interval)
  if left > 0 then
    redis.call('SET', KEYS[1], string.format('%d', now + left), 'PX', math.ceil(left / 1000))
  elseif level > 0 then
    redis.call('DEL', KEYS[1])
  end
  return {1, math.floor((cap - left) / interval), 0, left, 0, 0, 0}
end

local after = level + n * interval
if after <= cap then
  if not write then
    -- Peek and n = 0 report the state as it is.
    return {1, math.floor((cap - level) / interval), 0, level, level, 0, 0}
  end
  redis.call('SET', KEYS[1], string.format('%d', now + after), 'PX', math.ceil(after / 1000))
  return {1, math.floor((cap - after) / interval), 0, after, level, 0, 0}
end
if block > 0 and write then
  redis.call('SET', KEYS[1], string.format('%d', -(now + block)), 'PX', math.ceil(block / 1000))
  return {0, 0, block, block, 0, 1, 1}
end
return {0, math.floor((cap - level) / interval), after - cap, level, 0, 0, 0}
