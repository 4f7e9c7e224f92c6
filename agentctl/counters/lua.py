"""The Lua scripts behind `RedisCounters`: one script per protocol call, so each call
is one atomic step on the Redis server (scripts run to completion, nothing interleaves).

Layout under the key prefix P (see `agentctl.counters.redis`):
  P w:<window>  hash  ur ut up (used) sr st sp (settled) exp (expires_at, epoch s)
  P h:<rid>     hash  k (JSON list of window keys) r t p (held amounts)
  P b:<bucket>  hash  level at (epoch s), floats written with %.17g (exact round trip)
  P c:<slot>    zset  holder -> expiry (epoch s)
  P seeded      string, set by the first `record` (audit seeding happens once per Redis)
  P probe       string (5 s TTL), written by the failover probe (a write, unlike PING)

Exactness: amounts are decimal integer strings end to end. Writes use HINCRBY (64-bit
integers on the server); comparisons never convert to Lua numbers (doubles, exact only
below 2^53 = $9007 in pico-dollars): the caller passes a threshold per unit and
`cmp` compares canonical decimal strings. HINCRBY's numeric reply is returned only
below 2^53; above it the stored string is read back. Key TTLs are relative (derived from the
caller's `now`), so a caller's clock never makes Redis expire a key early.
"""

from __future__ import annotations

_LIB = r"""
local function cmp(a, b)
  local na, nb = string.sub(a, 1, 1) == '-', string.sub(b, 1, 1) == '-'
  if na ~= nb then return na and -1 or 1 end
  local sign = na and -1 or 1
  if #a ~= #b then return (#a < #b and -1 or 1) * sign end
  if a == b then return 0 end
  return (a < b and -1 or 1) * sign
end
local function neg(s)
  if s == '0' then return s end
  if string.sub(s, 1, 1) == '-' then return string.sub(s, 2) end
  return '-' .. s
end
local function incr(key, field, by)
  if by ~= '0' then redis.call('HINCRBY', key, field, by) end
end
local function f(x) return string.format('%.17g', x) end
local function expire_at(key, exp, now)
  local old = tonumber(redis.call('HGET', key, 'exp') or '0')
  if exp > old then redis.call('HSET', key, 'exp', f(exp)) else exp = old end
  redis.call('PEXPIRE', key, math.max(1000, math.ceil((exp - now) * 1000)))
end
local USED = {'ur', 'ut', 'up'}
local SETTLED = {'sr', 'st', 'sp'}
-- HINCRBY's reply reaches Lua as a double: exact below 2^53, else read the string back
local function add(key, field, by)
  local n = redis.call('HINCRBY', key, field, by)
  if n < 9007199254740992 and n > -9007199254740992 then return string.format('%.0f', n) end
  return redis.call('HGET', key, field)
end
"""

# KEYS: hold, windows...  ARGV: now, ttl, want r t p, then per window:
# expires_at, enforce, thr r, thr t, thr p ("" = no limit; refuse when used > thr)
RESERVE = (
    _LIB
    + r"""
if redis.call('EXISTS', KEYS[1]) == 1 then return {1, 0} end
local now, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local want = {ARGV[3], ARGV[4], ARGV[5]}
local hits, blocked, state = {}, false, {}
for i = 2, #KEYS do
  local a = 6 + (i - 2) * 5
  local have = redis.call('HMGET', KEYS[i], 'ur', 'ut', 'up', 'exp')
  state[i] = have
  for u = 1, 3 do
    local thr = ARGV[a + 1 + u]
    if thr ~= '' and cmp(have[u] or '0', thr) > 0 then
      table.insert(hits, i - 1); table.insert(hits, u); table.insert(hits, have[u] or '0')
      if ARGV[a + 1] == '1' then blocked = true end
    end
  end
end
local out = {blocked and 0 or 1, #hits / 3}
for _, v in ipairs(hits) do table.insert(out, v) end
if blocked then return out end
local keys = {}
for i = 2, #KEYS do
  local a = 6 + (i - 2) * 5
  local have = state[i]
  for u = 1, 3 do
    if want[u] == '0' then table.insert(out, have[u] or '0')
    else table.insert(out, add(KEYS[i], USED[u], want[u])) end
  end
  local exp = tonumber(ARGV[a])
  if not have[4] or tonumber(have[4]) < exp then
    if not have[1] then redis.call('HSETNX', KEYS[i], 'ur', '0') end
    expire_at(KEYS[i], exp, now)
  end
  table.insert(keys, KEYS[i])
end
redis.call('HSET', KEYS[1], 'k', cjson.encode(keys), 'r', want[1], 't', want[2], 'p', want[3])
redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil(ttl * 1000)))
return out
"""
)

# KEYS: hold  ARGV: got r t p [, held r t p, got - held r t p: the caller's note of what
# it reserved, which saves a write per unit when it matches the hold].
# Returns false (unknown hold) or {held r t p, (key, sr st sp)...}
SETTLE = (
    _LIB
    + r"""
local h = redis.call('HMGET', KEYS[1], 'k', 'r', 't', 'p')
if not h[1] then return false end
redis.call('DEL', KEYS[1])
local known = ARGV[4] == h[2] and ARGV[5] == h[3] and ARGV[6] == h[4]
local out = {h[2], h[3], h[4]}
for _, key in ipairs(cjson.decode(h[1])) do
  if redis.call('EXISTS', key) == 1 then
    table.insert(out, key)
    for u = 1, 3 do
      if known then incr(key, USED[u], ARGV[6 + u])
      else incr(key, USED[u], ARGV[u]); incr(key, USED[u], neg(h[u + 1])) end
      if ARGV[u] == '0' then table.insert(out, redis.call('HGET', key, SETTLED[u]) or '0')
      else table.insert(out, add(key, SETTLED[u], ARGV[u])) end
    end
  end
end
return out
"""
)

# KEYS: hold.  Returns 1 when a reservation was undone, 0 when there was none.
RELEASE = (
    _LIB
    + r"""
local h = redis.call('HMGET', KEYS[1], 'k', 'r', 't', 'p')
if not h[1] then return 0 end
redis.call('DEL', KEYS[1])
for _, key in ipairs(cjson.decode(h[1])) do
  if redis.call('EXISTS', key) == 1 then
    for u = 1, 3 do incr(key, USED[u], neg(h[u + 1])) end
  end
end
return 1
"""
)

# KEYS: marker, windows...  ARGV: now, then per window: expires_at, r, t, p.
# Applied only by the first caller after the marker is gone: N gateways starting
# against one Redis must not add the audit history N times.
RECORD = (
    _LIB
    + r"""
if not redis.call('SET', KEYS[1], ARGV[1], 'NX') then return 0 end
local now = tonumber(ARGV[1])
for i = 2, #KEYS do
  local a = 2 + (i - 2) * 4
  for u = 1, 3 do
    incr(KEYS[i], USED[u], ARGV[a + u]); incr(KEYS[i], SETTLED[u], ARGV[a + u])
  end
  redis.call('HSETNX', KEYS[i], 'ur', '0')
  expire_at(KEYS[i], tonumber(ARGV[a]), now)
end
return 1
"""
)

# KEYS: windows...  ARGV: now.  Returns per window: ur ut up sr st sp ("" when absent/expired)
USAGE = r"""
local out = {}
local now = tonumber(ARGV[1])
for i = 1, #KEYS do
  local v = redis.call('HMGET', KEYS[i], 'ur', 'ut', 'up', 'sr', 'st', 'sp', 'exp')
  local live = v[7] and tonumber(v[7]) > now
  for u = 1, 6 do table.insert(out, live and (v[u] or '0') or '') end
end
return out
"""

# Callers' clocks interleave (a call computed `now` before another that ran first), so
# a bucket's time never goes backwards: a late call refills nothing and keeps `at`.
# Storing an older `at` would hand the same seconds of refill out twice.
_BUCKET = r"""
local function level(key, per_minute, capacity, now)
  local s = redis.call('HMGET', key, 'level', 'at')
  if not s[1] then return capacity, now end
  local at = math.max(now, tonumber(s[2]))
  local refill = (at - tonumber(s[2])) * per_minute / 60
  return math.min(capacity, tonumber(s[1]) + refill), at
end
local function store(key, lvl, per_minute, capacity, at)
  local reset = math.max(0, (capacity - lvl) / (per_minute / 60))
  if reset <= 0 then redis.call('DEL', key); return 0 end
  redis.call('HSET', key, 'level', f(lvl), 'at', f(at))
  redis.call('PEXPIRE', key, math.ceil(reset * 1000) + 1000)
  return reset
end
"""

# KEYS: buckets...  ARGV: now, then per bucket: per_minute, capacity, cost, enforce.
# Returns ok, then per bucket: remaining, reset_after, retry_after, allowed.
TAKE = (
    _LIB
    + _BUCKET
    + r"""
local now = tonumber(ARGV[1])
local lv, at, fit, ok = {}, {}, {}, true
for i = 1, #KEYS do
  local a = 2 + (i - 1) * 4
  local pm, cap, cost = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  lv[i], at[i] = level(KEYS[i], pm, cap, now)
  fit[i] = lv[i] >= math.min(cost, cap)
  if not fit[i] and ARGV[a + 3] == '1' then ok = false end
end
local out = {ok and 1 or 0}
for i = 1, #KEYS do
  local a = 2 + (i - 1) * 4
  local pm, cap, cost = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local rate = pm / 60
  if ok and fit[i] then
    local left = lv[i] - cost
    local reset = store(KEYS[i], left, pm, cap, at[i])
    table.insert(out, f(math.max(0, math.floor(left)))); table.insert(out, f(reset))
    table.insert(out, '0'); table.insert(out, 1)
  else
    local retry = 0
    if not fit[i] then retry = (math.min(cost, cap) - lv[i]) / rate end
    table.insert(out, f(math.max(0, math.floor(lv[i]))))
    table.insert(out, f(math.max(0, (cap - lv[i]) / rate)))
    table.insert(out, f(retry)); table.insert(out, fit[i] and 1 or 0)
  end
end
return out
"""
)

# KEYS: bucket  ARGV: now, per_minute, capacity, delta (charge > 0, refund < 0)
ADJUST = (
    _LIB
    + _BUCKET
    + r"""
local now, pm, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local lvl, at = level(KEYS[1], pm, cap, now)
store(KEYS[1], math.min(cap, lvl - tonumber(ARGV[4])), pm, cap, at)
return 1
"""
)

# KEYS: slot set  ARGV: now, holder, limit, ttl.  Returns ok, holders.
ACQUIRE_SLOT = r"""
local now, limit, ttl = tonumber(ARGV[1]), tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local n = redis.call('ZCARD', KEYS[1])
if redis.call('ZSCORE', KEYS[1], ARGV[2]) or n < limit then
  redis.call('ZADD', KEYS[1], string.format('%.17g', now + ttl), ARGV[2])
  local ms = math.ceil(ttl * 1000)
  if redis.call('PTTL', KEYS[1]) < ms then redis.call('PEXPIRE', KEYS[1], ms) end
  return {1, redis.call('ZCARD', KEYS[1])}
end
return {0, n}
"""

# KEYS: slot sets  ARGV: seconds to add, lease ms, then one holder per key.
# Extends the slots this process still holds; a released or expired slot stays gone.
RENEW_SLOTS = r"""
for i = 1, #KEYS do
  if redis.call('ZSCORE', KEYS[i], ARGV[2 + i]) then
    redis.call('ZINCRBY', KEYS[i], ARGV[1], ARGV[2 + i])
    if redis.call('PTTL', KEYS[i]) < tonumber(ARGV[2]) then
      redis.call('PEXPIRE', KEYS[i], ARGV[2])
    end
  end
end
return 1
"""

SCRIPTS = {
    "reserve": RESERVE,
    "settle": SETTLE,
    "release": RELEASE,
    "record": RECORD,
    "usage": USAGE,
    "take": TAKE,
    "adjust": ADJUST,
    "acquire_slot": ACQUIRE_SLOT,
    "renew_slots": RENEW_SLOTS,
}
