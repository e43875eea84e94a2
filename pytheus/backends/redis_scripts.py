"""The Lua scripts that the Redis backend runs server-side.

Scripts run atomically in Redis, which gives the backend its guarantees: a flush is
applied whole or not at all, at most once per (process, sequence number), and a scrape
reads every metric in one consistent snapshot (a histogram's buckets, sum and count
can never disagree).

Keys, under a configurable prefix ``P``:

``P:defs``            hash: metric name -> canonical JSON definition (without help)
``P:help``            hash: metric name -> help text (the latest definition's)
``P:v:<name>``        hash: the values of one metric (fields below)
``P:procs``           sorted set: live process id -> time of its last flush
``P:last``            string: time of the last flush of any process
``P:dead``            sorted set: reaped process id -> time it was reaped
``P:seq``             hash: process id -> last applied flush sequence number
``P:pg:<process>``    set: the per-process gauge fields a process wrote, for reaping
``P:touched``         sorted set: name\\0series key -> last write (only with ``series_ttl``)

Fields of ``P:v:<name>`` start with the series key ``k``, the JSON list of label
values ordered by label name, so every process spells a label set the same way:
``k`` (counter value, info JSON, enum state), ``k\\0<i>`` (histogram bucket i, not
cumulative), ``k\\0s`` (sum), ``k\\0c`` (summary count), ``k\\0p\\0<process>`` and
``k\\0t\\0<process>`` (a process's gauge value and when it was set), ``k\\0r`` and
``k\\0rt`` (gauge values of reaped processes, folded by the gauge's mode).
"""

from __future__ import annotations

__all__ = ["FLUSH", "READ"]

# Shared by both scripts. Redis's own outage (or the network's) is no process's silence:
# time in which no process flushed at all does not count towards anyone's timeout, or
# every live process would be reaped on the first flush after an outage longer than
# the timeout (and summed gauges counted twice). Half the timeout is allowed between
# two flushes of all the processes together, as a lone process flushing rarely leaves.
_OUTAGE = r"""
local function outage(P, now, timeout)
  local last = tonumber(redis.call('GET', P .. ':last'))
  if last and now - last > timeout / 2 then return now - last - timeout / 2 end
  return 0
end
"""

# Fold the gauges of processes whose last flush is older than
# the timeout into the "retired" fields (by mode), drop their per-process fields, and
# forget sequence numbers long after, when no retry of theirs can still arrive.
_REAP = r"""
local function reap_procs(P, now, procs)
  for _, proc in ipairs(procs) do
    local fields = redis.call('SMEMBERS', P .. ':pg:' .. proc)
    for _, entry in ipairs(fields) do
      local sep = string.find(entry, '\0', 1, true)
      local name = string.sub(entry, 1, sep - 1)
      local key = string.sub(entry, sep + 1)
      local vkey = P .. ':v:' .. name
      local value = redis.call('HGET', vkey, key .. '\0p\0' .. proc)
      local set_at = redis.call('HGET', vkey, key .. '\0t\0' .. proc)
      local def = redis.call('HGET', P .. ':defs', name)
      local mode = 'livesum'
      if def then mode = cjson.decode(def)['multiprocess_mode'] or 'livesum' end
      if value then
        local retired = redis.call('HGET', vkey, key .. '\0r')
        local v = tonumber(value)
        if mode == 'sum' then
          local total = tonumber(retired or '0') + v
          if total == total and total ~= math.huge and total ~= -math.huge then
            redis.call('HINCRBYFLOAT', vkey, key .. '\0r', value)
          else
            -- HINCRBYFLOAT refuses infinities, and an error here would stop the
            -- script halfway: this process never reaped, every flush failing.
            redis.call('HSET', vkey, key .. '\0r', tostring(total))
          end
        elseif mode == 'max' then
          if not retired or v > tonumber(retired) then
            redis.call('HSET', vkey, key .. '\0r', value)
          end
        elseif mode == 'min' then
          if not retired or v < tonumber(retired) then
            redis.call('HSET', vkey, key .. '\0r', value)
          end
        elseif mode == 'mostrecent' then
          local retired_at = redis.call('HGET', vkey, key .. '\0rt')
          if set_at and (not retired_at or tonumber(set_at) >= tonumber(retired_at)) then
            redis.call('HSET', vkey, key .. '\0r', value, key .. '\0rt', set_at)
          end
        end
      end
      redis.call('HDEL', vkey, key .. '\0p\0' .. proc, key .. '\0t\0' .. proc)
    end
    redis.call('DEL', P .. ':pg:' .. proc)
    redis.call('ZREM', P .. ':procs', proc)
    redis.call('ZADD', P .. ':dead', now, proc)
  end
end

local function reap(P, now, timeout, retention, limit)
  reap_procs(P, now, redis.call('ZRANGEBYSCORE', P .. ':procs', '-inf', now - timeout,
                                'LIMIT', 0, limit))
  local old = redis.call('ZRANGEBYSCORE', P .. ':dead', '-inf', now - retention,
                         'LIMIT', 0, limit)
  for _, proc in ipairs(old) do
    redis.call('HDEL', P .. ':seq', proc)
    redis.call('ZREM', P .. ':dead', proc)
  end
end
"""

# Idle-series expiry (``series_ttl``): every write records when its series was last
# written in P:touched; series idle for longer than the ttl lose their fields (for
# gauges, only the values folded from dead processes: live ones are current).
_EXPIRE = r"""
local function series_of(field)
  local sep = string.find(field, '\0', 1, true)
  if sep then return string.sub(field, 1, sep - 1) end
  return field
end

local function expire(P, now, ttl, limit)
  local idle = redis.call('ZRANGEBYSCORE', P .. ':touched', '-inf', now - ttl,
                          'LIMIT', 0, limit)
  if #idle == 0 then return end
  for _, entry in ipairs(idle) do
    local sep = string.find(entry, '\0', 1, true)
    local name, key = string.sub(entry, 1, sep - 1), string.sub(entry, sep + 1)
    local vkey = P .. ':v:' .. name
    local def = redis.call('HGET', P .. ':defs', name)
    local decoded = def and cjson.decode(def)
    -- A gauge's value in a live process is its current value, however long ago it was
    -- set: only what dead processes left behind (folded by mode) can be idle.
    local fields = {key .. '\0r', key .. '\0rt'}
    if not decoded or decoded['type'] ~= 'gauge' then
      fields[#fields + 1] = key
      fields[#fields + 1] = key .. '\0s'
      fields[#fields + 1] = key .. '\0c'
      if decoded then
        for i = 0, #decoded['buckets'] - 1 do
          fields[#fields + 1] = key .. '\0' .. i
        end
      end
    end
    redis.call('HDEL', vkey, unpack(fields))
    redis.call('ZREM', P .. ':touched', entry)
  end
end
"""

#: ARGV: prefix, process id, sequence number, process timeout, seq retention,
#: exiting ("1" to reap this process right away), series ttl (0: never), payload JSON
#: ``{"d": {name: definition}, "h": {name: help}, "c": [[name, field, delta]],
#: "g": [[name, series key, value]], "s": [[name, field, value]]}``.
#: Returns ``{applied, reaped, conflicts, lost}``: applied is 0 for a duplicate (already
#: applied) flush, reaped is 1 when this process had been reaped (it must write its gauges
#: again), conflicts alternates metric names whose definition differs from the stored one
#: (their values were not written) with the stored definition, lost is 1 when Redis no
#: longer knows this process although it flushed before (Redis restarted empty, was
#: flushed or failed over to an empty replica): it must write everything again.
FLUSH = (
    _OUTAGE
    + _REAP
    + _EXPIRE
    + r"""
local P, proc, seq = ARGV[1], ARGV[2], tonumber(ARGV[3])
local timeout, retention = tonumber(ARGV[4]), tonumber(ARGV[5])
local exiting = ARGV[6] == '1'
local ttl = tonumber(ARGV[7])
local payload = cjson.decode(ARGV[8])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000

local excess = outage(P, now, timeout)
if excess > 0 then
  for _, other in ipairs(redis.call('ZRANGE', P .. ':procs', 0, -1)) do
    redis.call('ZINCRBY', P .. ':procs', excess, other)
  end
end
redis.call('SET', P .. ':last', now)

local was_reaped = 0
if redis.call('ZSCORE', P .. ':dead', proc) then
  was_reaped = 1
  redis.call('ZREM', P .. ':dead', proc)
end
local last = redis.call('HGET', P .. ':seq', proc)
if last and tonumber(last) >= seq then
  return {0, was_reaped, {}, 0}
end
-- A sequence number is kept for a day after a process is reaped: one that flushed before
-- and is unknown now finds a Redis that lost what it held.
local lost = 0
if not last and seq > 1 then lost = 1 end

-- Check every definition before writing anything: a script that fails halfway would
-- leave half a flush behind, since Redis does not roll scripts back.
local conflicts, skip = {}, {}
for name, def in pairs(payload['d']) do
  local stored = redis.call('HGET', P .. ':defs', name)
  if stored and stored ~= def then
    skip[name] = true
    conflicts[#conflicts + 1] = name
    conflicts[#conflicts + 1] = stored
  elseif not stored then
    redis.call('HSET', P .. ':defs', name, def)
  end
end
for name, help in pairs(payload['h']) do
  if not skip[name] then redis.call('HSET', P .. ':help', name, help) end
end

for _, op in ipairs(payload['c']) do
  if not skip[op[1]] then
    redis.call('HINCRBYFLOAT', P .. ':v:' .. op[1], op[2], op[3])
  end
end
for _, op in ipairs(payload['g']) do
  if not skip[op[1]] then
    local vkey = P .. ':v:' .. op[1]
    redis.call('HSET', vkey, op[2] .. '\0p\0' .. proc, op[3], op[2] .. '\0t\0' .. proc, now)
    redis.call('SADD', P .. ':pg:' .. proc, op[1] .. '\0' .. op[2])
  end
end
for _, op in ipairs(payload['s']) do
  if not skip[op[1]] then
    redis.call('HSET', P .. ':v:' .. op[1], op[2], op[3])
  end
end

if ttl > 0 then
  for _, group in ipairs({payload['c'], payload['g'], payload['s']}) do
    for _, op in ipairs(group) do
      if not skip[op[1]] then
        redis.call('ZADD', P .. ':touched', now, op[1] .. '\0' .. series_of(op[2]))
      end
    end
  end
  expire(P, now, ttl, 100)
end

redis.call('HSET', P .. ':seq', proc, seq)
if exiting then
  reap_procs(P, now, {proc})
else
  redis.call('ZADD', P .. ':procs', now, proc)
end
reap(P, now, timeout, retention, 100)
return {1, was_reaped, conflicts, lost}
"""
)

#: ARGV: prefix, process timeout. Returns ``{now, defs, live processes, help, values...}``
#: with one HGETALL reply per definition, in the order of ``defs``.
READ = (
    _OUTAGE
    + r"""
local P, timeout = ARGV[1], tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local defs = redis.call('HGETALL', P .. ':defs')
local since = now - timeout - outage(P, now, timeout)
local live = redis.call('ZRANGEBYSCORE', P .. ':procs', since, '+inf')
local out = {tostring(now), defs, live, redis.call('HGETALL', P .. ':help')}
for i = 1, #defs, 2 do
  out[#out + 1] = redis.call('HGETALL', P .. ':v:' .. defs[i])
end
return out
"""
)
