-- tokenbucket.lua: token bucket with optional lockout, one key, integer microseconds.
--
-- The bucket is kept in GCRA form: one integer, the theoretical arrival time
-- (TAT). Tokens left at time now = Burst - (TAT - now) / interval.
--
-- KEYS[1]  state: a decimal integer. >= 0: TAT in µs since the Unix epoch;
--          < 0: the key is locked until -value µs. Missing or unreadable: fresh.
-- ARGV[1]  interval: µs per token (integer >= 1)
-- ARGV[2]  burst: capacity in tokens (integer >= 1)
-- ARGV[3]  cost n (integer >= 0; 0 consumes nothing and writes nothing)
-- ARGV[4]  block: lockout in µs after a denial (0 = none)
-- ARGV[5]  mode: "0" consume n; "1" peek: answer for n, write nothing;
--          "2" refund: give n back (never lifts a lock, never below fresh)
-- ARGV[6]  now in µs (tests only), or "" to use Redis TIME
-- Reply: {allowed 0|1, remaining, retry_after µs, reset_after µs, delay µs,
--         locked 0|1, lock_started 0|1}; integers only.
-- Writes: at most one SET with PX; the TTL is the time after which the key is
-- indistinguishable from a missing one.
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

local tat = now
local v = tonumber(redis.call('GET', KEYS[1]) or '')
if v then
  if v < 0 then
    -- The key's TTL (set with every write) bounds a lock from a faster clock.
    local left = -v - now
    if left > 0 then
      return {0, 0, left, left, 0, 1, 0}
    end
  elseif v > now then
    -- A TAT from a faster clock (a promoted replica) is clamped to a full debt.
    tat = math.min(v, now + cap)
  end
end

if mode == '2' then
  local debt = math.max(0, tat - now - n * interval)
  if debt > 0 then
    redis.call('SET', KEYS[1], string.format('%d', now + debt), 'PX', math.ceil(debt / 1000))
  elseif tat > now then
    redis.call('DEL', KEYS[1])
  end
  return {1, math.floor((cap - debt) / interval), 0, debt, 0, 0, 0}
end

local after = tat - now + n * interval
if after <= cap then
  if not write then
    -- Peek and n = 0 report the state as it is.
    return {1, math.floor((cap - tat + now) / interval), 0, tat - now, 0, 0, 0}
  end
  redis.call('SET', KEYS[1], string.format('%d', now + after), 'PX', math.ceil(after / 1000))
  return {1, math.floor((cap - after) / interval), 0, after, 0, 0, 0}
end
if block > 0 and write then
  redis.call('SET', KEYS[1], string.format('%d', -(now + block)), 'PX', math.ceil(block / 1000))
  return {0, 0, block, block, 0, 1, 1}
end
return {0, math.floor((cap - tat + now) / interval), after - cap, tat - now, 0, 0, 0}
