"""The Lua scripts that the Redis backend runs server-side.

Redis runs one command at a time, and a script is one command: while it runs, every
other client of that Redis waits (the application's cache, other workers). So every
script here does a bounded amount of work, whatever the number of series:

* a flush is a pipeline of one HEARTBEAT (the keys of the whole prefix: this process is
  alive, the families and gauge values it holds) and one WRITE per *chunk*: up to a fixed
  cost of series of one family (``redis_flush.CHUNK_COST``), touching that family's keys
  only. A WRITE is atomic, so a series (a histogram's buckets, sum and count) is written
  whole or not at all; it is applied at most once, by a sequence number per process and
  family kept in the family's own hash;
* housekeeping (reaping silent processes, folding their gauges, forgetting sequence
  numbers, expiring idle series) is done by one process at a time, the one whose
  HEARTBEAT took the *turn*: FOLD and EXPIRE calls of bounded size, each on one family;
* a scrape reads the list of families with READ_META, then each family in slices of
  its hash (HSCAN, no script: see :mod:`~pytheus.backends.redis_read`); a series is
  one field, so it is never torn, and a scrape of one family (``name[]``, the admin
  page) reads that family only.

Every key a script touches is named in KEYS, and the keys of one call share a hash tag
(see :mod:`pytheus.backends.redis_keys`): in Redis Cluster each call runs on the node
that holds its keys, the families spread over the primaries. Numbers are written with
``%.17g``, which reads back as the same double. No script decodes JSON: a malformed
value stored by someone else cannot make one fail halfway (Redis does not roll a script
back), and the few that could be malformed are skipped and reported.
"""

from __future__ import annotations

__all__ = ["EXPIRE", "FOLD", "FOLDED", "HEARTBEAT", "READ_META", "SCRIPTS", "WRITE"]

_COMMON = r"""
if redis.replicate_commands then pcall(redis.replicate_commands) end

local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

-- A number as text that reads back as the same double; whole numbers (counts, most
-- values) the cheap way.
local function num(x)
  if x == math.floor(x) and x > -1e15 and x < 1e15 then return string.format('%d', x) end
  return string.format('%.17g', x)
end

local function finite(x)
  return x == x and x ~= math.huge and x ~= -math.huge
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

#: KEYS: per chunk, its family's hash and that family's ``touched`` set. ARGV: 1 process,
#: 2 series ttl on ("1"/"0"), 3 "-" (liveness unknown) or the number of live processes,
#: then their names; then per chunk: sequence number, may replace another definition
#: ("1"/"0"), definition, help ("" keeps it; else "=" + help), kind ("c" counter add,
#: "h" packed add, "g" gauge, "s" set, "-" none), the number of series, then series and
#: value alternating.
#:
#: Returns, per chunk, ``{status, other definition, lost, malformed series, dropped}``. status: 1
#: applied; 0 already applied (a resend after a lost reply); -1 not applied: an earlier chunk of
#: this process is missing (the other definition's place holds the last sequence number Redis
#: has: behind this process's if Redis lost writes it had applied, restored from an older
#: snapshot or failed over to a replica that lagged); 2 not applied: the family is stored with
#: another definition (returned), which a live process holds, or which may be held (the live
#: processes were not given); 3 applied after replacing the other definition (returned), which no
#: live process held any more (its values, that many fields, were dropped). lost is 1 when the
#: family had forgotten this process (the key was lost: evicted, deleted, Redis restarted empty):
#: the chunk was applied to what is there now. A call touches the keys of its families only (one
#: family per call in Redis Cluster): what the whole prefix keeps about the process is the
#: HEARTBEAT's.
WRITE = (
    _COMMON
    + r"""
local proc, ttl_on = ARGV[1], ARGV[2] == '1'
local qfield = '\0q\0' .. proc
local time_now = nil
-- Redis's clock, read once and only if needed (gauges, series ttl): TIME costs.
local function now()
  if not time_now then time_now = clock() end
  return time_now
end
local live, at = nil, 4
if ARGV[3] ~= '-' then
  live, at = {}, 4 + tonumber(ARGV[3])
  for i = 4, at - 1 do live[#live + 1] = ARGV[i] end
end

local function held_by_another(fam)
  if not live then return true end
  for _, holder in ipairs(live) do
    if holder ~= proc and redis.call('HEXISTS', fam, '\0q\0' .. holder) == 1 then
      return true
    end
  end
  return false
end

-- A sparse change ("~<n>;<position>:<change>,..." with increasing positions from 1) added
-- to the stored numbers ("a,b,c,..."): the numbers changed are parsed, added and
-- formatted, the text between them copied as it is. nil if either is malformed.
local function sparse_add(old, change)
  local semi = string.find(change, ';', 2, true)
  local n = semi and tonumber(string.sub(change, 2, semi - 1))
  if not n then return nil end
  local changes = {}
  for pos, d in string.gmatch(string.sub(change, semi + 1), '(%d+):([^,]+)') do
    changes[#changes + 1] = {tonumber(pos), tonumber(d)}
  end
  if not old then
    local zeros = {}
    for j = 1, n do zeros[j] = 0 end
    for _, c in ipairs(changes) do
      if not c[2] or c[1] > n then return nil end
      zeros[c[1]] = c[2]
    end
    for j = 1, n do zeros[j] = num(zeros[j]) end
    return table.concat(zeros, ',')
  end
  local out, copied, from, position, k = {}, 1, 1, 1, 1
  while true do
    local comma = string.find(old, ',', from, true)
    if k <= #changes and changes[k][1] == position then
      local stop = comma and comma - 1 or #old
      local v, d = tonumber(string.sub(old, from, stop)), changes[k][2]
      if v == nil or d == nil then return nil end
      out[#out + 1] = string.sub(old, copied, from - 1)
      out[#out + 1] = num(v + d)
      copied, k = stop + 1, k + 1
    end
    if not comma then break end
    from, position = comma + 1, position + 1
  end
  -- As many numbers as the definition says, and every change placed: a stored value of
  -- another shape is malformed.
  if k <= #changes or position ~= n then return nil end
  out[#out + 1] = string.sub(old, copied)
  return table.concat(out)
end

-- One chunk: its family's hash and touched set, its arguments from ARGV[at] to ARGV[stop].
-- Its series are read with one HMGET and written with one HSET: a command called from a
-- script costs Redis more than the arithmetic done here.
local function write(fam, touched, at, stop)
  local seq, def = tonumber(ARGV[at]), ARGV[at + 2]
  local head = redis.call('HMGET', fam, '\0d', qfield)
  local stored, last = head[1], tonumber(head[2])
  local status, other, dropped = 1, '', 0
  if stored and stored ~= def then
    if ARGV[at + 1] ~= '1' or held_by_another(fam) then return {2, stored, 0, {}, 0} end
    -- No live process holds the stored definition: this one replaces it. UNLINK frees a
    -- large hash in the background instead of in this script.
    dropped = redis.call('HLEN', fam)
    redis.call('UNLINK', fam, touched)
    status, other, stored, last = 3, stored, false, nil
  end

  local lost = 0
  if last then
    if last >= seq then return {0, '', 0, {}, 0} end
    if last < seq - 1 then return {-1, tostring(last), 0, {}, 0} end
  elseif seq > 1 and status ~= 3 then
    lost = 1
  end

  local kind, first, bad = ARGV[at + 4], at + 6, {}
  local set = {qfield, seq}
  if not stored then set[#set + 1], set[#set + 2] = '\0d', def end
  if ARGV[at + 3] ~= '' then set[#set + 1], set[#set + 2] = '\0h', string.sub(ARGV[at + 3], 2) end

  if kind == 'c' or kind == 'h' then
    local fields = {}
    for i = first, stop, 2 do fields[#fields + 1] = ARGV[i] end
    local olds = redis.call('HMGET', fam, unpack(fields))
    for k = 1, #fields do
      local i, old = first + 2 * (k - 1), olds[k]
      local new = nil
      if kind == 'c' then
        new = tonumber(ARGV[i + 1])
        if old then
          local v = tonumber(old)
          new = v and new and new + v
        end
        if new and finite(new) then new = num(new) else new = nil end
      elseif string.byte(ARGV[i + 1], 1) == 126 then  -- "~": sparse
        new = sparse_add(old, ARGV[i + 1])
      else
        -- Only the numbers that changed are parsed, added and formatted again (an
        -- observation changes one bucket, the count and the sum): Lua's string work is
        -- most of a histogram's cost.
        local add = {}
        for x in string.gmatch(ARGV[i + 1], '[^,]+') do add[#add + 1] = x end
        local out, ok = {}, true
        if old then
          local j = 0
          for x in string.gmatch(old, '[^,]+') do
            j = j + 1
            local d = add[j]
            if d == nil then ok = false break end
            if d == '0' then
              out[j] = x
            else
              local v, dv = tonumber(x), tonumber(d)
              if v == nil or dv == nil then ok = false break end
              out[j] = num(v + dv)
            end
          end
          if j ~= #add then ok = false end
        else
          for j = 1, #add do
            local v = tonumber(add[j])
            if v == nil then ok = false break end
            out[j] = num(v)
          end
        end
        if ok then new = table.concat(out, ',') end
      end
      if new then
        set[#set + 1], set[#set + 2] = fields[k], new
      else
        bad[#bad + 1] = fields[k]
      end
    end
  elseif kind == 'g' then
    local stamp, own = ',' .. num(now()), '\0p\0' .. proc
    for i = first, stop, 2 do
      set[#set + 1], set[#set + 2] = ARGV[i] .. own, ARGV[i + 1] .. stamp
    end
  elseif kind == 's' then
    for i = first, stop, 2 do set[#set + 1], set[#set + 2] = ARGV[i], ARGV[i + 1] end
  end
  redis.call('HSET', fam, unpack(set))

  if ttl_on and stop >= first then
    -- What expiry deletes: the series, or what dead processes left of a gauge.
    local suffix, add = kind == 'g' and '\0r' or '', {}
    local at_time = now()
    for i = first, stop, 2 do add[#add + 1], add[#add + 2] = at_time, ARGV[i] .. suffix end
    redis.call('ZADD', touched, unpack(add))
  end
  return {status, other, lost, bad, dropped}
end

local out = {}
for k = 1, #KEYS, 2 do
  local stop = at + 5 + 2 * tonumber(ARGV[at + 5])
  out[#out + 1] = write(KEYS[k], KEYS[k + 1], at, stop)
  at = stop + 1
end
return out
"""
)

#: KEYS: 1 procs, 2 last, 3 dead, 4 fold, 5 families, 6 the process's gauge set, 7 its
#: sequence set, 8 the housekeeping turn. ARGV: 1 process, 2 process timeout, 3 retention
#: of a reaped process's sequence numbers, 4 "1" if this process flushed before, 5 "" or,
#: for a process that exits, how many seconds its last flush can still be sent again (it
#: is reaped at once, its sequence numbers kept that long), 6 "1" to get the live
#: processes, 7 milliseconds of the housekeeping turn to take (0: none), 8 "1" if series
#: expire (series_ttl); then three lists, each its length and its items: names of
#: families to add to the list of families, names of families that hold a sequence
#: number of this process from this flush on, gauge values this process writes from this
#: flush on (``mode\0family\0series``, for folding them when it is gone); then the
#: token of the list of families this process knows ("" if none).
#:
#: Returns 0 when there is nothing to say (not reaped, not lost, the same token, no live
#: processes asked for, no housekeeping turn taken), else ``{reaped, lost, epoch, created,
#: live, fold, forget, expire}``: reaped is 1 when this
#: process had been reaped (its gauges were being folded: it must write them again); lost is 1
#: when Redis no longer knew this process although it flushed before (restarted empty, flushed,
#: evicted): it must write everything again; epoch is the token of the list of families (a change
#: means the list was lost and made again: add every family again), created is 1 when this call
#: made it; live lists the live processes when asked for. The last three are the housekeeping
#: turn's work when this call took the turn (empty otherwise): up to ten gone processes whose
#: gauge values are to be folded, each with the time it went, up to ten whose sequence numbers
#: are to be forgotten, families whose idle series are to be expired. That work is done by the
#: process with the turn, in calls of their own to each family's keys (see
#: ``redis_flush.Housekeeping``): at most one process at a time, whatever the number of
#: processes.
HEARTBEAT = (
    _COMMON
    + r"""
local procs, last, dead, fold, families = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local proc, timeout, retention = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local leave, turn = ARGV[5], tonumber(ARGV[7])
local now = clock()

local excess = outage(last, now, timeout)
if excess > 0 then
  for _, other in ipairs(redis.call('ZRANGE', procs, 0, -1)) do
    redis.call('ZINCRBY', procs, excess, other)
  end
end
redis.call('SET', last, num(now))

-- The three lists: positions of their first and last items in ARGV.
local at, lists = 9, {}
for k = 1, 3 do
  local n = tonumber(ARGV[at])
  lists[k] = {at + 1, at + n}
  at = at + n + 1
end

local epoch, created = redis.call('HGET', families, '\0epoch'), 0
if not epoch then
  epoch, created = num(now) .. ' ' .. proc, 1
  redis.call('HSET', families, '\0epoch', epoch)
end
-- Many members a call (a first flush lists every gauge series): a call from a script
-- costs more than a member added.
local function add_all(command, key, first, last, value)
  local batch = {}
  for i = first, last do
    batch[#batch + 1] = ARGV[i]
    if value then batch[#batch + 1] = value end
    if #batch >= 1000 or i == last then
      redis.call(command, key, unpack(batch))
      batch = {}
    end
  end
end
add_all('HSET', families, lists[1][1], lists[1][2], '')
add_all('SADD', KEYS[7], lists[2][1], lists[2][2])
add_all('SADD', KEYS[6], lists[3][1], lists[3][2])

local reaped, lost = 0, 0
if redis.call('ZSCORE', dead, proc) then
  -- Back after being reaped: what is left of its gauge values is not folded any more
  -- (FOLD leaves values written after the process was reaped), it writes them again.
  reaped = 1
  redis.call('ZREM', dead, proc)
  redis.call('ZREM', fold, proc)
end
if leave ~= '' then
  redis.call('ZREM', procs, proc)
  redis.call('ZADD', fold, now, proc)
  -- Its sequence numbers are forgotten once its last flush can no longer be sent again.
  redis.call('ZADD', dead, now - retention + tonumber(leave), proc)
elseif redis.call('ZADD', procs, now, proc) == 1 and reaped == 0 and ARGV[4] == '1' then
  lost = 1  -- it flushed before, yet Redis did not know it
end

local live = {}
if ARGV[6] == '1' then live = redis.call('ZRANGEBYSCORE', procs, now - timeout, '+inf') end

-- The housekeeping turn: one process at a time, for `turn` milliseconds.
local to_fold, to_forget, to_expire = {}, {}, {}
if turn > 0 and redis.call('SET', KEYS[8], proc, 'PX', turn, 'NX') then
  -- Silent for longer than the timeout: reaped. Their gauge values are folded next.
  for _, other in ipairs(redis.call('ZRANGEBYSCORE', procs, '-inf', now - timeout,
                                    'LIMIT', 0, 100)) do
    redis.call('ZREM', procs, other)
    redis.call('ZADD', dead, now, other)
    redis.call('ZADD', fold, now, other)
  end
  to_fold = redis.call('ZRANGE', fold, 0, 9, 'WITHSCORES')
  -- A reaped process's sequence numbers are kept for `retention` seconds, so that a
  -- flush it sends again after a lost reply is still known as one already applied;
  -- then forgotten, once its gauges are folded.
  for _, other in ipairs(redis.call('ZRANGEBYSCORE', dead, '-inf', now - retention,
                                    'LIMIT', 0, 20)) do
    if not redis.call('ZSCORE', fold, other) then
      to_forget[#to_forget + 1] = other
      if #to_forget == 10 then break end
    end
  end
  if ARGV[8] == '1' then
    -- Five families per turn, in turn: where the last turn stopped is kept in the list.
    local names, at = {}, tonumber(redis.call('HGET', families, '\0expiry')) or 0
    for _, name in ipairs(redis.call('HKEYS', families)) do
      if string.byte(name, 1) ~= 0 then names[#names + 1] = name end
    end
    for k = 1, math.min(5, #names) do to_expire[k] = names[(at + k - 1) % #names + 1] end
    redis.call('HSET', families, '\0expiry', #names > 0 and (at + 5) % #names or 0)
  end
end

-- Nothing to say (most heartbeats): a number, cheaper to make than the table.
if reaped + lost + created == 0 and epoch == ARGV[at] and ARGV[6] ~= '1' and #to_fold == 0
   and #to_forget == 0 and #to_expire == 0 then
  return 0
end
return {reaped, lost, epoch, created, live, to_fold, to_forget, to_expire}
"""
)

#: KEYS: 1 a family's hash. ARGV: 1 a gone process, 2 when it went (Redis's time), then
#: gauge mode and series alternating: that process's values of those series, folded into
#: each series's "retired" value by the gauge's mode (live modes and "all" drop it):
#: "sum" keeps what gone processes left, and nothing per process stays behind. A value
#: set after the process went is its own again (it came back): left alone. Folding a
#: value twice (two turns at once, a retry) does nothing the second time: it is gone
#: after the first. Returns how many values were folded.
FOLD = (
    _COMMON
    + r"""
local fam, other, went, folded = KEYS[1], ARGV[1], tonumber(ARGV[2]), 0
for i = 3, #ARGV, 2 do
  local mode, series = ARGV[i], ARGV[i + 1]
  local field = series .. '\0p\0' .. other
  local v, at = pair(redis.call('HGET', fam, field))
  if v == nil or at <= went then redis.call('HDEL', fam, field) else v = nil end
  if v ~= nil and (mode == 'sum' or mode == 'max' or mode == 'min' or mode == 'mostrecent') then
    local rfield = series .. '\0r'
    local rv, rat = pair(redis.call('HGET', fam, rfield))
    local nv, nat = nil, at
    if rv == nil then nv = v
    elseif mode == 'sum' then nv, nat = rv + v, math.max(at, rat)
    elseif mode == 'max' then if v > rv then nv = v end
    elseif mode == 'min' then if v < rv then nv = v end
    elseif at >= rat then nv = v end
    if nv ~= nil then redis.call('HSET', fam, rfield, num(nv) .. ',' .. num(nat)) end
    folded = folded + 1
  end
end
return folded
"""
)

#: KEYS: 1 a family's hash, 2 its touched set. ARGV: 1 series ttl, 2 how many at most.
#: Idle-series expiry (series_ttl): a series nobody wrote for ttl seconds loses its
#: value; a gauge only the value gone processes left (a live process's is current).
#: Returns how many fields were deleted.
EXPIRE = (
    _COMMON
    + r"""
local now = clock()
local idle = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[1]),
                        'LIMIT', 0, tonumber(ARGV[2]))
for _, field in ipairs(idle) do
  redis.call('HDEL', KEYS[1], field)
  redis.call('ZREM', KEYS[2], field)
end
return #idle
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

#: KEYS: 1 fold, 2 a gone process's gauge set. ARGV: 1 that process, then the entries of
#: its set that FOLD folded: removed, unless the process came back meanwhile (it is not
#: in fold any more), whose entries are its own again.
FOLDED = r"""
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  for i = 2, #ARGV do redis.call('SREM', KEYS[2], ARGV[i]) end
end
return 0
"""

#: Every script, by name: what the backend loads after Redis answers NOSCRIPT.
SCRIPTS = {
    "HEARTBEAT": HEARTBEAT,
    "WRITE": WRITE,
    "FOLD": FOLD,
    "FOLDED": FOLDED,
    "EXPIRE": EXPIRE,
    "READ_META": READ_META,
}
