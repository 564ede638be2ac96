"""Lua scripts for `RedisCounters`: each runs atomically inside Redis.

Usage is kept as exact decimal strings. Lua numbers are doubles, so the scripts never turn
usage into a number: a value is parsed into a sign and a string of digits scaled by 10^12
(quantities have at most 12 decimals), and added, subtracted and compared nine digits at
a time (a double holds those sums exactly). Token buckets are not money and use doubles.

A counter is one hash: `used` (decimal string), `ps`/`pe` (its period, µs) and, per
bucket, `b:<name>:t` (tokens) and `b:<name>:l` (last refill, µs). A second key, the load
marker, exists while some process reads a missing counter from the database: an `add`
that finds no counter bumps it, so the loader knows its read may have missed that usage
and reads again (see docs/limits-redis.md).
"""

from __future__ import annotations

DECIMALS = r"""
local SCALE, W, BASE = 12, 9, 1000000000

local function strip(m)
  m = string.gsub(m, '^0+', '')
  if m == '' then return '0' end
  return m
end

local function parse(s)
  local neg = string.sub(s, 1, 1) == '-'
  if neg then s = string.sub(s, 2) end
  local ip, fp = string.match(s, '^(%d*)%.?(%d*)$')
  if ip == nil or #fp > SCALE then return error('not a decimal: ' .. s) end
  local m = strip(ip .. fp .. string.rep('0', SCALE - #fp))
  if m == '0' then neg = false end
  return neg, m
end

local function format(neg, m)
  if m == '0' then return '0' end
  m = string.rep('0', SCALE + 1 - #m) .. m
  local ip = string.sub(m, 1, #m - SCALE)
  local fp = string.gsub(string.sub(m, #m - SCALE + 1), '0+$', '')
  local s = ip
  if fp ~= '' then s = ip .. '.' .. fp end
  if neg then return '-' .. s end
  return s
end

local function cmp_mag(a, b)
  if #a ~= #b then return (#a < #b) and -1 or 1 end
  if a == b then return 0 end
  return (a < b) and -1 or 1
end

-- a + sign * b on magnitudes, digit chunks from the right; sign -1 needs a >= b
local function chunked(a, b, sign)
  local n = math.max(#a, #b)
  n = n + (W - n % W) % W
  a = string.rep('0', n - #a) .. a
  b = string.rep('0', n - #b) .. b
  local out, carry = {}, 0
  for i = n - W + 1, 1, -W do
    local x = tonumber(string.sub(a, i, i + W - 1))
    local y = tonumber(string.sub(b, i, i + W - 1))
    local s = x + sign * y + carry
    carry = 0
    if s >= BASE then s = s - BASE; carry = 1 end
    if s < 0 then s = s + BASE; carry = -1 end
    table.insert(out, 1, string.format('%09d', s))
  end
  if carry > 0 then table.insert(out, 1, '1') end
  return strip(table.concat(out))
end

local function add(an, am, bn, bm)
  if an == bn then return an, chunked(am, bm, 1) end
  local c = cmp_mag(am, bm)
  if c == 0 then return false, '0' end
  if c > 0 then return an, chunked(am, bm, -1) end
  return bn, chunked(bm, am, -1)
end

local function cmp(an, am, bn, bm)
  if an ~= bn then return an and -1 or 1 end
  if an then return -cmp_mag(am, bm) end
  return cmp_mag(am, bm)
end

-- Whole numbers below 10^15 add exactly as doubles (sums stay below 2^53): most
-- counters are, so they skip the digit strings.
local function small(s)
  return #s <= 16 and string.find(s, '^%-?%d+$') ~= nil and #string.gsub(s, '^%-', '') <= 15
end

local function dadd(a, b)
  if small(a) and small(b) then
    local r = tonumber(a) + tonumber(b)
    if r == 0 then return '0' end
    return string.format('%.0f', r)
  end
  local an, am = parse(a)
  local bn, bm = parse(b)
  return format(add(an, am, bn, bm))
end

local function dneg(a)
  if string.sub(a, 1, 1) == '-' then return string.sub(a, 2) end
  return '-' .. a
end

local function dcmp(a, b)
  if small(a) and small(b) then
    local x, y = tonumber(a), tonumber(b)
    if x == y then return 0 end
    return (x < y) and -1 or 1
  end
  local an, am = parse(a)
  local bn, bm = parse(b)
  return cmp(an, am, bn, bm)
end
"""

# KEYS: counter, load marker. ARGV: 1 ps, 2 pe, 3 quantity, 4 ceiling, 5 soft limit,
# 6-8 rate bucket (name, rate, capacity), 9-11 throttle bucket, 12 now_us, 13 loaded
# usage ('' on the first call), 14 marker value seen before loading ('*': install anyway),
# 15 expiry (ms since epoch). '' means "none" for the optional ones.
# Returns {status, used, refused_by, retry_after_us} or {'missing', marker}.
ADMIT = (
    DECIMALS
    + r"""
local h = KEYS[1]
local cur = redis.call('HMGET', h, 'used', 'ps', 'pe')
local used, store = cur[1], true
if not (used and cur[2] == ARGV[1] and cur[3] == ARGV[2]) then
  if used and tonumber(cur[2]) > tonumber(ARGV[1]) then
    -- a late call for an earlier period: decide on the record, never move the counter back
    if ARGV[13] == '' then return {'missing', ''} end
    used, store = ARGV[13], false
  elseif ARGV[13] == '' or (ARGV[14] ~= '*' and redis.call('GET', KEYS[2]) ~= ARGV[14]) then
    redis.call('SET', KEYS[2], '0', 'NX', 'PX', 60000)
    return {'missing', redis.call('GET', KEYS[2])}
  else
    used = ARGV[13]
    redis.call('HSET', h, 'used', used, 'ps', ARGV[1], 'pe', ARGV[2])
    redis.call('PEXPIREAT', h, ARGV[15])
    redis.call('DEL', KEYS[2])
  end
end

local now = tonumber(ARGV[12])
local need = tonumber(ARGV[3])

-- tokens left after taking `need` (nil when short) and the µs until it holds them
local function take(name, rate, cap)
  local st = redis.call('HMGET', h, 'b:' .. name .. ':t', 'b:' .. name .. ':l')
  rate, cap = tonumber(rate), tonumber(cap)
  local tokens, last = tonumber(st[1]) or cap, tonumber(st[2]) or now
  local elapsed = math.max(0, now - last)
  tokens = math.min(cap, tokens + elapsed * rate / 1e6)
  if tokens >= need then return tokens - need, math.max(now, last), '' end
  if rate <= 0 then return nil, nil, '' end
  return nil, nil, string.format('%.0f', math.ceil((need - tokens) * 1e6 / rate))
end

local function keep(name, tokens, last)
  redis.call('HSET', h, 'b:' .. name .. ':t', string.format('%.17g', tokens),
             'b:' .. name .. ':l', string.format('%.0f', last))
end

local rate_t, rate_l, retry
if ARGV[6] ~= '' then
  rate_t, rate_l, retry = take(ARGV[6], ARGV[7], ARGV[8])
  if not rate_t then return {'refused', used, 'rate', retry} end
end
local new = dadd(used, ARGV[3])
if ARGV[4] ~= '' and dcmp(new, ARGV[4]) > 0 then return {'refused', used, 'ceiling', ''} end
if ARGV[9] ~= '' and ARGV[5] ~= '' then
  if dcmp(new, ARGV[5]) > 0 then
    local t, l, r = take(ARGV[9], ARGV[10], ARGV[11])
    if not t then return {'refused', used, 'throttle', r} end
    keep(ARGV[9], t, l)
  end
end
if rate_t then keep(ARGV[6], rate_t, rate_l) end
if store then redis.call('HSET', h, 'used', new) end
return {'admitted', new, '', ''}
"""
)

# KEYS: counter, load marker. ARGV: time_us, quantity. Adds when the counter's period
# holds time_us; otherwise tells a loader in progress (if any) that it may have missed it.
ADD = (
    DECIMALS
    + r"""
local cur = redis.call('HMGET', KEYS[1], 'used', 'ps', 'pe')
local t = tonumber(ARGV[1])
if cur[1] and t >= tonumber(cur[2]) and t < tonumber(cur[3]) then
  redis.call('HSET', KEYS[1], 'used', dadd(cur[1], ARGV[2]))
  return 1
end
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('INCR', KEYS[2]) end
return 0
"""
)

# KEYS: counter. ARGV: ps, pe, quantity. Undoes an admission of that period.
RELEASE = (
    DECIMALS
    + r"""
local cur = redis.call('HMGET', KEYS[1], 'used', 'ps', 'pe')
if not (cur[1] and cur[2] == ARGV[1] and cur[3] == ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'used', dadd(cur[1], dneg(ARGV[3])))
return 1
"""
)
