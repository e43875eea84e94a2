"""The Lua scripts that the Redis backend runs server-side.

Redis runs one command at a time, and a script is one command: while it runs, every
other client of that Redis waits (the application's cache, other workers). So every
script here does a bounded amount of work, whatever the number of series:

* a flush is a pipeline of one HEARTBEAT and one WRITE per *chunk*: up to a fixed cost of
  series of one family (``redis_flush.CHUNK_COST``). A WRITE is atomic, so a series (a
  histogram's buckets, sum and count) is written whole or not at all; it is applied at
  most once, by a sequence number per process and family kept in the family's own hash;
* the HEARTBEAT's housekeeping (reaping silent processes, folding their gauges,
  forgetting sequence numbers, expiring idle series) stops after a couple of
  milliseconds (Redis's clock) and carries on in the next; a scrape's does none;
* a scrape reads the list of families with READ_META, then each family in slices of
  its hash (HSCAN, no script: see :mod:`~pytheus.backends.redis_read`); a series is
  one field, so it is never torn, and a scrape of one family (``name[]``, the admin
  page) reads that family only.

Every key a script writes is named in KEYS except those of other processes and families
found in bookkeeping (reaping, expiry), which are built from the prefixes in ARGV; see
:mod:`pytheus.backends.redis_keys` for the layout. Numbers are written with
``%.17g``, which reads back as the same double. No script decodes JSON: a malformed
value stored by someone else cannot make one fail halfway (Redis does not roll a script
back), and the few that could be malformed are skipped and reported.
"""

from __future__ import annotations

__all__ = ["HEARTBEAT", "READ_META", "SCRIPTS", "WRITE"]

_COMMON = r"""
if redis.replicate_commands then pcall(redis.replicate_commands) end

local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

local function num(x)
  return string.format('%.17g', x)
end

-- Redis's own outage (or the network's) is no process's silence: time in which no
-- process flushed at all does not count towards anyone's timeout, or every live process
-- would be reaped by the first flush after an outage longer than the timeout (and
-- summed gauges counted twice). Half the timeout is allowed between two flushes of all
-- the processes together, as a lone process flushing rarely leaves.
local function outage(last_key, now, timeout)
  local last = tonumber(redis.call('GET', last_key))
  if last and now - last > timeout / 2 then return now - last - timeout / 2 end
  return 0
end

-- "value,time" (a gauge's value and when it was set) -> value, time; nil if malformed.
local function pair(text)
  if not text then return nil end
  local sep = string.find(text, ',', 1, true)
  if not sep then return nil end
  local v, t = tonumber(string.sub(text, 1, sep - 1)), tonumber(string.sub(text, sep + 1))
  if v == nil or t == nil then return nil end
  return v, t
end
"""

#: KEYS: 1 procs, 2 last, 3 the process's gauge set, 4 its sequence set, 5 touched,
#: 6 left, 7... the hash of each chunk's family. ARGV: 1 process, 2 process timeout, 3 series ttl
#: on ("1"/"0"), then per chunk: family name, sequence number, may replace another
#: definition ("1"/"0"), definition, help ("" keeps it; else "=" + help), kind ("c"
#: counter add, "h" packed add, "g" gauge, "s" set, "-" none), gauge mode, the number of
#: series, then series and value alternating.
#:
#: Returns, per chunk, ``{status, other definition, lost, malformed series, dropped}``. status: 1
#: applied; 0 already applied (a resend, or any chunk of a process that has left: its last flush
#: sent again); -1 not applied: an earlier chunk of this process is missing (returned: the last one
#: the family holds); 2 not applied: the family is stored with another definition (returned), which
#: a live process holds; 3 applied after replacing the other definition (returned), which no live
#: process held any more (its values, that many fields, were dropped). lost is 1 when the family had
#: forgotten this process (the key was lost: evicted, deleted, Redis restarted empty): the chunk was
#: applied to what is there now. Several small chunks (of several families) share a call; in Redis
#: Cluster each family's chunks would be calls of their own.
WRITE = (
    _COMMON
    + r"""
local procs, last_flush, gauges, sequences, touched = KEYS[1], KEYS[2], KEYS[3], KEYS[4],
                                                      KEYS[5]
local proc, timeout, ttl_on = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1'
local qfield = '\0q\0' .. proc
local now = clock()

local function held_by_another(fam)
  local since = now - timeout - outage(last_flush, now, timeout)
  for _, holder in ipairs(redis.call('ZRANGEBYSCORE', procs, since, '+inf')) do
    if holder ~= proc and redis.call('HEXISTS', fam, '\0q\0' .. holder) == 1 then
      return true
    end
  end
  return false
end

-- One chunk: its family's hash, and its arguments from ARGV[at] to ARGV[stop].
local function write(fam, at, stop)
  local name, seq, def = ARGV[at], tonumber(ARGV[at + 1]), ARGV[at + 3]
  local stored = redis.call('HGET', fam, '\0d')
  local status, other, dropped = 1, '', 0
  if stored and stored ~= def then
    if ARGV[at + 2] ~= '1' or held_by_another(fam) then return {2, stored, 0, {}, 0} end
    -- No live process holds the stored definition: this one replaces it. UNLINK frees a
    -- large hash in the background instead of in this script.
    dropped = redis.call('HLEN', fam)
    redis.call('UNLINK', fam)
    status, other, stored = 3, stored, false
  end

  local last = tonumber(redis.call('HGET', fam, qfield))
  local lost = 0
  if last then
    if last >= seq then return {0, '', 0, {}, 0} end
    if last < seq - 1 then return {-1, last, 0, {}, 0} end
  elseif seq > 1 and status ~= 3 then
    lost = 1
  end

  if not stored then redis.call('HSET', fam, '\0d', def) end
  if ARGV[at + 4] ~= '' then redis.call('HSET', fam, '\0h', string.sub(ARGV[at + 4], 2)) end
  redis.call('HSET', fam, qfield, seq)
  if not last then redis.call('SADD', sequences, name) end

  local kind, first, bad = ARGV[at + 5], at + 8, {}
  if kind == 'c' then
    for i = first, stop, 2 do
      local r = redis.pcall('HINCRBYFLOAT', fam, ARGV[i], ARGV[i + 1])
      if type(r) == 'table' and r.err then bad[#bad + 1] = ARGV[i] end
    end
  elseif kind == 'h' then
    for i = first, stop, 2 do
      local add = {}
      for x in string.gmatch(ARGV[i + 1], '[^,]+') do add[#add + 1] = tonumber(x) end
      local old, ok = redis.call('HGET', fam, ARGV[i]), true
      if old then
        local j = 0
        for x in string.gmatch(old, '[^,]+') do
          j = j + 1
          local v = tonumber(x)
          if v == nil or add[j] == nil then ok = false break end
          add[j] = add[j] + v
        end
        if j ~= #add then ok = false end
      end
      if ok then
        for j = 1, #add do add[j] = num(add[j]) end
        redis.call('HSET', fam, ARGV[i], table.concat(add, ','))
      else
        bad[#bad + 1] = ARGV[i]
      end
    end
  elseif kind == 'g' then
    local stamp = ',' .. num(now)
    local entry = ARGV[at + 6] .. '\0' .. name .. '\0'
    for i = first, stop, 2 do
      redis.call('HSET', fam, ARGV[i] .. '\0p\0' .. proc, ARGV[i + 1] .. stamp)
      redis.call('SADD', gauges, entry .. ARGV[i])
    end
  elseif kind == 's' then
    for i = first, stop, 2 do redis.call('HSET', fam, ARGV[i], ARGV[i + 1]) end
  end

  if ttl_on then
    local entry = (kind == 'g' and 'g' or 'v') .. '\0' .. name .. '\0'
    for i = first, stop, 2 do redis.call('ZADD', touched, now, entry .. ARGV[i]) end
  end
  return {status, other, lost, bad, dropped}
end

local left = redis.call('ZSCORE', KEYS[6], proc)
local out, at = {}, 4
for k = 7, #KEYS do
  local stop = at + 7 + 2 * tonumber(ARGV[at + 7])
  if left then
    out[#out + 1] = {0, '', 0, {}, 0}  -- sent again after the process said it left
  else
    out[#out + 1] = write(KEYS[k], at, stop)
  end
  at = stop + 1
end
return out
"""
)

#: KEYS: 1 procs, 2 last, 3 dead, 4 fold, 5 families, 6 touched, 7 left, 8... the hashes
#: of the families that hold a sequence number of this process (to check they still do).
#: ARGV: 1 the prefix of shared keys ("P:{@}:"), 2 the prefix of family keys ("P:{"),
#: 3 process, 4 process timeout, 5 retention of a reaped process's sequence numbers,
#: 6 series ttl (0: none), 7 milliseconds of housekeeping at most (0: none), 8 "1" if
#: this process flushed before,
#: 9 "" or, for a process that exits, how many seconds it is remembered as gone (it is
#: reaped at once; a resend of its last flush after a lost reply comes within seconds,
#: and is not applied), 10... names of families to add to the list of families.
#:
#: Returns ``{reaped, lost, epoch, created, missing}``: reaped is 1 when this process had
#: been reaped (its gauges were folded away: it must write them again); lost is 1 when
#: Redis no longer knew this process although it flushed before (restarted empty,
#: flushed, evicted): it must write everything again; epoch is the token of the list of
#: families (a change means the list was lost and made again: add every family again),
#: created is 1 when this call made it; missing lists the positions (1-based, in
#: KEYS[8...]) of the families that no longer hold this process's sequence number.
HEARTBEAT = (
    _COMMON
    + r"""
local procs, dead, fold = KEYS[1], KEYS[3], KEYS[4]
local shared, fam_open, proc = ARGV[1], ARGV[2], ARGV[3]
local timeout, retention = tonumber(ARGV[4]), tonumber(ARGV[5])
local ttl, budget = tonumber(ARGV[6]), tonumber(ARGV[7])
local now = clock()

local excess = outage(KEYS[2], now, timeout)
if excess > 0 then
  for _, other in ipairs(redis.call('ZRANGE', procs, 0, -1)) do
    redis.call('ZINCRBY', procs, excess, other)
  end
end
redis.call('SET', KEYS[2], num(now))

local reaped, lost = 0, 0
if redis.call('ZSCORE', dead, proc) then
  reaped = 1
  redis.call('ZREM', dead, proc)
  redis.call('ZREM', fold, proc)
elseif ARGV[8] == '1' and not redis.call('ZSCORE', procs, proc) then
  lost = 1
end
if ARGV[9] ~= '' then
  redis.call('ZREM', procs, proc)
  redis.call('ZADD', fold, now, proc)
  -- Its sequence numbers are forgotten (and `left` forgets it) once its last flush can
  -- no longer be sent again: each guards against a resend should the other be lost.
  redis.call('ZADD', dead, now - retention + tonumber(ARGV[9]), proc)
  redis.call('ZADD', KEYS[7], now + tonumber(ARGV[9]), proc)
else
  redis.call('ZADD', procs, now, proc)
  redis.call('ZREM', KEYS[7], proc)  -- a process that said it left, flushing again
end

local epoch, created = redis.call('HGET', KEYS[5], '\0epoch'), 0
if not epoch then
  epoch, created = num(now) .. ' ' .. proc, 1
  redis.call('HSET', KEYS[5], '\0epoch', epoch)
end
for i = 10, #ARGV do redis.call('HSET', KEYS[5], ARGV[i], '') end

local missing = {}
for i = 8, #KEYS do
  if redis.call('HEXISTS', KEYS[i], '\0q\0' .. proc) == 0 then missing[#missing + 1] = i - 7 end
end

-- Housekeeping, for at most `budget` milliseconds (none when 0: a scrape's heartbeat
-- leaves it to the flushers), in steps of a few dozen values between looks at the clock.
local deadline = now + budget / 1000
local function more() return budget > 0 and clock() < deadline end
local STEP = 25

-- Silent for longer than the timeout: reaped. Their gauge values are folded below.
if budget > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', now)  -- gone long enough
  for _, other in ipairs(redis.call('ZRANGEBYSCORE', procs, '-inf', now - timeout,
                                    'LIMIT', 0, STEP)) do
    redis.call('ZREM', procs, other)
    redis.call('ZADD', dead, now, other)
    redis.call('ZADD', fold, now, other)
  end
end

-- Fold each value of a dead process into the series' "retired" value by the gauge's
-- mode (live modes and "all" drop it): "sum" keeps what dead processes left, and
-- nothing per process stays behind.
local function fold_value(other, entry)
  local a = string.find(entry, '\0', 1, true)
  local b = a and string.find(entry, '\0', a + 1, true)
  if not b then return end
  local mode, name, series = string.sub(entry, 1, a - 1), string.sub(entry, a + 1, b - 1),
                             string.sub(entry, b + 1)
  local fam = fam_open .. name .. '}'
  local field = series .. '\0p\0' .. other
  local v, at = pair(redis.call('HGET', fam, field))
  redis.call('HDEL', fam, field)
  if v == nil or not (mode == 'sum' or mode == 'max' or mode == 'min' or mode == 'mostrecent') then
    return
  end
  local rfield = series .. '\0r'
  local rv, rat = pair(redis.call('HGET', fam, rfield))
  local nv, nat = nil, at
  if rv == nil then nv = v
  elseif mode == 'sum' then nv, nat = rv + v, math.max(at, rat)
  elseif mode == 'max' then if v > rv then nv = v end
  elseif mode == 'min' then if v < rv then nv = v end
  elseif at >= rat then nv = v end
  if nv ~= nil then redis.call('HSET', fam, rfield, num(nv) .. ',' .. num(nat)) end
end

for _, other in ipairs(redis.call('ZRANGE', fold, 0, 9)) do
  local gauges = shared .. 'g:' .. other
  while more() do
    local entries = redis.call('SPOP', gauges, STEP)
    for _, entry in ipairs(entries) do fold_value(other, entry) end
    if #entries < STEP then break end
  end
  if redis.call('EXISTS', gauges) == 0 then redis.call('ZREM', fold, other) end
  if not more() then break end
end

-- A reaped process's sequence numbers are kept for `retention` seconds, so that a flush
-- it sends again after a lost reply is still known as one already applied; then (and at
-- once for a process that left, which `left` guards) they are forgotten, once its
-- gauges are folded.
if more() then
  for _, other in ipairs(redis.call('ZRANGEBYSCORE', dead, '-inf', now - retention,
                                    'LIMIT', 0, 10)) do
    if not redis.call('ZSCORE', fold, other) then
      local families = shared .. 'q:' .. other
      while more() do
        local names = redis.call('SPOP', families, STEP)
        for _, name in ipairs(names) do
          redis.call('HDEL', fam_open .. name .. '}', '\0q\0' .. other)
        end
        if #names < STEP then break end
      end
      if redis.call('EXISTS', families) == 0 then redis.call('ZREM', dead, other) end
    end
    if not more() then break end
  end
end

-- Idle-series expiry (series_ttl): a series nobody wrote for `ttl` seconds loses its
-- value; a gauge only the value dead processes left (a live process's is current).
if ttl > 0 and more() then
  for _, entry in ipairs(redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', now - ttl,
                                    'LIMIT', 0, 4 * STEP)) do
    local a = string.find(entry, '\0', 1, true)
    local b = a and string.find(entry, '\0', a + 1, true)
    if b then
      local fam = fam_open .. string.sub(entry, a + 1, b - 1) .. '}'
      local series = string.sub(entry, b + 1)
      if string.sub(entry, 1, a - 1) == 'g' then series = series .. '\0r' end
      redis.call('HDEL', fam, series)
    end
    redis.call('ZREM', KEYS[6], entry)
  end
end

return {reaped, lost, epoch, created, missing}
"""
)

#: KEYS: 1 procs, 2 last, 3 families. ARGV: 1 process timeout, 2... family names to
#: look for (none: every family). Returns ``{now, live processes, family names}``.
READ_META = (
    _COMMON
    + r"""
local timeout = tonumber(ARGV[1])
local now = clock()
local since = now - timeout - outage(KEYS[2], now, timeout)
local live = redis.call('ZRANGEBYSCORE', KEYS[1], since, '+inf')
local names = {}
if #ARGV > 1 then
  for i = 2, #ARGV do
    if redis.call('HEXISTS', KEYS[3], ARGV[i]) == 1 then names[#names + 1] = ARGV[i] end
  end
else
  for _, name in ipairs(redis.call('HKEYS', KEYS[3])) do
    if string.byte(name, 1) ~= 0 then names[#names + 1] = name end
  end
end
return {num(now), live, names}
"""
)

#: Every script, by name: what the backend loads after Redis answers NOSCRIPT.
SCRIPTS = {
    "HEARTBEAT": HEARTBEAT,
    "WRITE": WRITE,
    "READ_META": READ_META,
}
