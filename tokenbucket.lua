-- tokenbucket.lua: token bucket with optional lockout, one key, no TIME call.
--
-- The bucket is kept in GCRA form: the theoretical arrival time TAT, and the
-- debt d = TAT - now (µs) the bucket lacks from full, so tokens left =
-- (cap - d) / interval. The clock is the key's own expiry E (a Redis
-- millisecond timestamp): the stored integer is o = TAT - 1000*E, and PTTL
-- gives E - now, so d = o + 1000*PTTL, on Redis's millisecond clock. An
-- admission on a key in use costs two Redis calls (PTTL, INCRBY), a peek two
-- (PTTL, GET); a denial, a fresh start or a moved expiry costs one more.
--
-- KEYS[1]  state: o, a decimal integer (<= 0 at rest, so the key outlives
--          TAT), or LOCK (2^60) while locked until the key expires. Missing,
--          without TTL or unreadable: fresh.
-- ARGV[1]  c: the call's cost in µs, n * interval (>= 1; peek, refund: >= 0)
-- ARGV[2]  cap: Burst * interval in µs (>= c), in hexadecimal (tonumber with
--          a base skips strtod, a tenth of an admission's cost)
-- ARGV[3]  block: lockout in ms after a denial, or "" for none
-- ARGV[4]  mode: "" or absent consume; "p" peek: answer, write nothing;
--          "r" refund: give c back (never lifts a lock, never below fresh)
-- ARGV[5]  PTTL to use instead of asking Redis (tests only), or absent
-- Reply:   an integer: >= 0 admitted (peek: would be; refund: done), < 0
--          denied; the debt before the call is the reply (refund: after it),
--          or -1 - reply when denied, clamped to [0, cap]. While locked:
--          {rest of the lock in µs, 1 if this call started it else 0}.
-- Writes:  the TTL is E, at least TAT + cap when E last moved, so the key
--          lives at most two bucket refills after its last admission.
local K = KEYS[1]
local cs = ARGV[1]
local c = tonumber(cs)
local cap = tonumber(ARGV[2], 16)
local mode = ARGV[4]
local p = tonumber(ARGV[5]) or redis.call('PTTL', K)
local LOCK = 576460752303423488 -- 2^59: values at or above it are locks

if mode == 'p' or mode == 'r' then
  local d = 0
  if p > 0 then
    local v
    if mode == 'p' then
      v = tonumber(redis.pcall('GET', K))
    else
      v = redis.pcall('INCRBY', K, string.format('%d', -c))
      if type(v) ~= 'number' then v = nil end
    end
    if v and v >= LOCK then
      if mode == 'r' then redis.call('INCRBY', K, cs) end
      return {1000 * p, 0}
    end
    if v then d = v + 1000 * p end
  end
  if d < 0 then d = 0 elseif d > cap then d = cap end
  if mode == 'r' then
    if d == 0 and p > 0 then redis.call('DEL', K) end
    return d
  end
  if d + c <= cap then return d end
  return -1 - d
end

local x, d0 = 0, 0
if p > 0 then
  x = redis.pcall('INCRBY', K, cs)
  if type(x) ~= 'number' then
    p = 0
  elseif x >= LOCK then
    redis.call('DECRBY', K, cs)
    return {1000 * p, 0}
  else
    d0 = x - c + 1000 * p
  end
end
if p <= 0 or d0 < 0 then
  -- Fresh, or full again: TAT = now + c.
  if p > 0 and 1000 * p >= c then
    redis.call('INCRBY', K, string.format('%d', c - 1000 * p - x))
  else
    local ms = math.ceil((c + cap) / 1000)
    redis.call('SET', K, string.format('%d', c - 1000 * ms), 'PX', string.format('%d', ms))
  end
  return 0
end
-- On one clock d0 <= cap. More means the expiry came from a faster clock (a
-- promoted replica's): start over from a full debt on this clock.
if d0 > cap then
  local ms = math.ceil(2 * cap / 1000)
  redis.call('SET', K, string.format('%d', cap - 1000 * ms), 'PX', string.format('%d', ms))
  d0, x = cap, nil
end
if d0 + c > cap then
  local block = ARGV[3]
  if block and block ~= '' then
    redis.call('SET', K, '1152921504606846976', 'PX', block)
    return {1000 * tonumber(block), 1}
  end
  if x then redis.call('DECRBY', K, cs) end
  return -1 - d0
end
if x > 0 then
  -- TAT passed the expiry: move the expiry to TAT + cap.
  local ms = math.ceil((x + cap) / 1000)
  redis.call('SET', K, string.format('%d', x - 1000 * ms), 'PX', string.format('%d', p + ms))
end
return d0
