"""What a process sends to Redis, and what it makes of the answers (the writing side).

A flush is one pipeline: a HEARTBEAT, then WRITE calls, each carrying a *chunk*: changes
of up to :data:`CHUNK_COST` worth of series of one family (see
:mod:`pytheus.backends.redis_scripts`). A chunk is applied whole or not at all; Redis
says which, chunk by chunk:

* **applied** (or already applied: a resend after a lost reply): the series' new values
  become what the next deltas are computed from;
* **not applied** (the family is stored with another definition that a live process
  holds, an earlier chunk is missing, Redis refused it: out of memory, a malformed
  value, ...): the chunk is *undone*: its series get back their previous values here, so
  that the next flush sends those changes again, with what changed since;
* **no answer** (a connection error, a timeout): the chunks stay *pending* and are sent
  again, unchanged and under the same sequence numbers, before anything else; Redis
  applies each one once whatever happened to the first attempt.

Sequence numbers are per process and family, kept in the family's own hash: a key that
Redis loses (evicted, deleted) takes them along with the values they guard, so a resend
can never be applied twice; Redis reports the loss instead, and this process writes that
family's series again.

**Replication** (``wait_replicas`` > 0, Sentinel's default): Redis acknowledges a write
before its replicas have it, so a primary that dies right after can take acknowledged
changes with it. Applied chunks are therefore kept as *unconfirmed* and sent again at the
front of every flush (cheap: Redis answers "already applied" from their sequence
numbers) until a flush that carried them ends with ``WAIT`` and enough replicas confirm
(only the flusher's flushes wait; a scrape's never does), or until ``wait_timeout``
passes. After a failover, the new primary lacks exactly the chunks it never received,
with their sequence numbers (they replicate in the same hash as the values), so the
resend applies each of those once and the rest not again. Should the new primary lack
more than this process still holds (a replica behind the one that confirmed, or
``wait_replicas=0``), Redis says where its sequence stops; this process carries on from
there (see :meth:`Writer.settle_replication`) instead of being refused for ever.

A family that Redis holds under another definition (a deploy that changed buckets or
labels, while processes of the previous release still run) keeps its changes here: each
flush only asks whether the other definition is still held by a live process; once none
is, this definition replaces it and everything counted meanwhile is sent.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from pytheus.backends.redis_format import encode_change, series_key
from pytheus.backends.redis_keys import KeyLayout

__all__ = [
    "CHUNK_COST",
    "Chunk",
    "FamilyToFlush",
    "Heartbeat",
    "HeartbeatReply",
    "Writer",
    "calls",
    "is_out_of_memory",
    "shadow_value",
]

logger = logging.getLogger("pytheus.backends.redis")

#: The most a WRITE call carries, in units of roughly one ``HINCRBYFLOAT`` of Redis's
#: time (a microsecond or two on an idle machine): a millisecond or so per call, well
#: under the 25 ms that no call may take on a busy one.
CHUNK_COST = 400
#: What a chunk costs in a call besides its series (its bookkeeping: a few commands).
CHUNK_OVERHEAD = 5
#: Milliseconds of housekeeping per HEARTBEAT of a flush (reaping, folding, forgetting,
#: expiring): it carries on at the next.
HOUSEKEEPING_MS = 2

# The WRITE script's kinds of change, by metric type.
_KINDS = {
    "counter": "c",
    "histogram": "h",
    "summary": "h",
    "gauge": "g",
    "info": "s",
    "stateset": "s",
}


def calls(chunks: Sequence[Chunk], *, one_family: bool = False) -> list[list[Chunk]]:
    """The chunks of a flush, in order, grouped into WRITE calls that cost at most
    ``CHUNK_COST`` each (a chunk is never split): many small families, one call. With
    ``one_family`` (Redis Cluster: a call's keys must share a slot), a call carries
    chunks of one family only."""
    out: list[list[Chunk]] = []
    cost = CHUNK_COST
    for chunk in chunks:
        if cost + CHUNK_OVERHEAD + chunk.cost > CHUNK_COST or (
            one_family and out[-1][-1].name != chunk.name
        ):
            out.append([])
            cost = 0
        out[-1].append(chunk)
        cost += CHUNK_OVERHEAD + chunk.cost
    return out


def shadow_value(kind: str, snap: Any) -> Any:
    """The part of a snapshot that the next flush's changes are computed from."""
    if kind == "counter":
        return snap[0]
    if kind == "histogram":
        return (snap.counts, snap.sum)
    if kind == "summary":
        return (snap.observations, snap.sum)
    return snap


def _series_cost(kind: str, buckets: int) -> int:
    if kind == "histogram":
        return 2 + buckets // 3  # parsed, added and formatted number by number in Lua
    return 2 if kind in ("gauge", "summary") else 1


@dataclass
class FamilyToFlush:
    """One metric as a flush sees it: its name, definition and series (children)."""

    name: str
    metric: Any  # a Metric, or the backend's own _Stat
    definition: str  # canonical JSON
    help: str


@dataclass
class Chunk:
    """One WRITE call: changes of some series of one family, numbered for idempotency."""

    name: str
    seq: int
    kind: str
    definition: str
    help: str | None  # sent when the family may not have it yet
    may_replace: bool
    fields: list[str] = field(default_factory=list)  # series and value, alternating
    # (series, its previous shadow entry, whether it was announced): for undo().
    undo: list[tuple[Any, tuple[str, Any] | None, bool]] = field(default_factory=list)
    cost: int = 0
    # When Redis first applied it (time.monotonic()), while it waits for a replica's
    # confirmation: never undone from then on, only sent again.
    applied: float | None = None


@dataclass
class Heartbeat:
    """A HEARTBEAT's KEYS and ARGV, and what it records (see :meth:`Writer.heartbeat_args`)."""

    keys: list[str]
    args: list[Any]
    register: list[str]
    sequences: list[str]
    gauges: list[str]


@dataclass
class HeartbeatReply:
    """What a HEARTBEAT said (see ``HEARTBEAT`` in :mod:`~pytheus.backends.redis_scripts`)."""

    reaped: bool
    lost: bool
    created: bool
    fold: list[tuple[str, str]]  # gone processes whose gauge values the turn folds, and when
    forget: list[str]  # reaped processes whose sequence numbers the turn forgets
    expire: list[str]  # families whose idle series the turn expires


class Writer:
    """The flush state of one process: what Redis has of each series, and of each family.

    Not thread-safe: the backend calls it under its flush lock.
    """

    def __init__(self, keys: KeyLayout) -> None:
        self.keys = keys
        # Per series (child): its field name and the values Redis has from this process.
        self.shadow: weakref.WeakKeyDictionary[Any, tuple[str, Any]] = weakref.WeakKeyDictionary()
        # Series to write at the next flush even if unchanged (a counter at zero, after
        # Redis lost it): they show in scrapes again.
        self.announce: weakref.WeakSet[Any] = weakref.WeakSet()
        self.reset_process()

    def reset_process(self) -> None:
        """A new process (fork): nothing of it is in Redis yet."""
        self.acked: dict[str, int] = {}  # family -> last sequence number Redis applied
        self.conflicts: dict[str, str] = {}  # family -> the other definition it waits on
        self.registered: set[str] = set()  # in the list of families (under self.epoch)
        self.epoch: str | None = None
        self.pending: list[Chunk] = []  # sent, no answer
        self.unconfirmed: list[Chunk] = []  # applied, no replica confirmed them yet
        self.gaps: dict[str, int] = {}  # family -> where Redis's sequence stops (a flush's)
        self.forgotten = 0  # unconfirmed chunks given up since a replica last confirmed
        self.help_due: set[str] = set()
        self.announce = weakref.WeakSet()
        # What the HEARTBEAT is to record before the WRITEs that need it are applied (in
        # the keys of the whole prefix, which a WRITE does not touch): the families that
        # get a sequence number of this process, the gauge values it writes (to fold
        # them when it is gone). Kept until a HEARTBEAT takes them.
        self.new_sequences: set[str] = set()
        self.new_gauges: set[str] = set()
        # The live processes, as the last HEARTBEAT that listed them said (None: not
        # known): what a WRITE needs to tell whether another definition is still held.
        self.live: list[str] | None = None

    # ------------------------------------------------------------------ building

    def build(self, families: Iterable[FamilyToFlush]) -> list[Chunk]:
        """The chunks of everything that changed since the last flush Redis applied."""
        chunks: list[Chunk] = []
        shadow, announced = self.shadow, self.announce
        self.announce = weakref.WeakSet()
        for fam in families:
            name, metric = fam.name, fam.metric
            d = metric.definition
            kind = d.type
            seq = self.acked.get(name, 0)
            if seq == 0:
                self.new_sequences.add(name)
            helped = seq == 0 or name in self.help_due
            self.help_due.discard(name)

            def new_chunk(
                first: bool, name: str = name, fam: FamilyToFlush = fam, helped: bool = helped
            ) -> Chunk:
                nonlocal seq
                seq += 1
                return Chunk(
                    name=name,
                    seq=seq,
                    kind=_KINDS[fam.metric.definition.type],
                    definition=fam.definition,
                    help=fam.help if first and helped else None,
                    may_replace=first,
                )

            if name in self.conflicts:
                # Only ask whether the other definition is still held: the changes stay
                # here (the series' previous values are left as they are).
                probe = new_chunk(True)
                probe.kind = "-"
                chunks.append(probe)
                continue
            cost = _series_cost(kind, len(d.buckets))
            labelnames = d.labelnames
            gauge = f"{d.multiprocess_mode}\0{name}\0" if kind == "gauge" else None
            chunk: Chunk | None = None
            for child in metric.children():
                entry = shadow.get(child)
                was_announced = bool(announced) and child in announced
                current = shadow_value(kind, child.snapshot())
                previous = entry[1] if entry is not None else None
                if current == previous and not was_announced:
                    continue
                value = encode_change(kind, current, previous, was_announced or previous is None)
                if value is None:
                    continue
                key = entry[0] if entry is not None else series_key(labelnames, child.labelset)
                if gauge is not None and previous is None:
                    self.new_gauges.add(gauge + key)
                if chunk is None or chunk.cost + cost > CHUNK_COST - CHUNK_OVERHEAD:
                    chunk = new_chunk(chunk is None)
                    chunks.append(chunk)
                chunk.fields += (key, value)
                chunk.undo.append((child, entry, was_announced))
                chunk.cost += cost
                shadow[child] = (key, current)
            if chunk is None and helped:
                # Nothing changed, but Redis must learn of the family (its definition, its
                # help, that this process holds it).
                empty = new_chunk(True)
                empty.kind = "-"
                chunks.append(empty)
        return chunks

    def undo(self, chunk: Chunk) -> None:
        """Give the chunk's series back their previous values: it was not applied."""
        for child, entry, was_announced in chunk.undo:
            if entry is None:
                self.shadow.pop(child, None)
            else:
                self.shadow[child] = entry
            if was_announced:
                self.announce.add(child)
        if chunk.help is not None:
            self.help_due.add(chunk.name)

    # ------------------------------------------------------------------ the pipeline

    def heartbeat_args(
        self,
        *,
        process: str,
        timeout: float,
        retention: float,
        known: bool,
        leave: float | None,
        turn_ms: int,
        expiry: bool,
        families: Iterable[str],
    ) -> Heartbeat:
        """The HEARTBEAT of a flush, with what it records for the WRITEs beside it."""
        keys = self.keys
        register = [n for n in families if n not in self.registered]
        sequences = sorted(self.new_sequences)
        gauges = sorted(self.new_gauges)
        script_keys = [
            keys.procs,
            keys.last,
            keys.dead,
            keys.fold,
            keys.families,
            keys.gauges_of(process),
            keys.sequences_of(process),
            keys.turn,
        ]
        args: list[Any] = [
            process,
            timeout,
            retention,
            "1" if known else "0",
            "" if leave is None else leave,
            # Liveness is what a WRITE needs to take over a definition; asked for while
            # one waits, and on a process's first flush (a deploy that changed a metric).
            "1" if self.conflicts or not known else "0",
            turn_ms,
            "1" if expiry else "0",
            len(register),
            *register,
            len(sequences),
            *sequences,
            len(gauges),
            *gauges,
            self.epoch or "",
        ]
        return Heartbeat(script_keys, args, register, sequences, gauges)

    def write_args(
        self, chunks: Sequence[Chunk], *, process: str, ttl: bool
    ) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of one WRITE call carrying ``chunks`` (see :func:`calls`)."""
        keys = self.keys
        script_keys: list[str] = []
        live: list[Any] = ["-"]
        if self.live is not None and any(c.may_replace for c in chunks):
            live = [len(self.live), *self.live]
        args: list[Any] = [process, "1" if ttl else "0", *live]
        for chunk in chunks:
            script_keys += (keys.family(chunk.name), keys.touched(chunk.name))
            args += (
                chunk.seq,
                "1" if chunk.may_replace else "0",
                chunk.definition,
                "" if chunk.help is None else "=" + chunk.help,
                chunk.kind,
                len(chunk.fields) // 2,
                *chunk.fields,
            )
        return script_keys, args

    def checked_families(self) -> list[str]:
        """The families that hold a sequence number of this process: whether they still
        do tells whether Redis lost them (see :meth:`take_missing`)."""
        return [n for n, s in self.acked.items() if s > 0]

    # ------------------------------------------------------------------ answers

    def take_heartbeat(self, reply: Sequence[Any] | int, sent: Heartbeat) -> HeartbeatReply:
        """Apply a HEARTBEAT's answer (its ``sent`` arguments) and return what it said."""
        if isinstance(reply, int):  # 0, nothing to say: the list of families is as known
            reply = (0, 0, self.epoch, 0, [], [], [], [])
        reaped, lost, epoch, created, live, to_fold, to_forget, to_expire = reply
        epoch = _text(epoch)
        if self.epoch is not None and epoch != self.epoch:
            logger.warning(
                "The list of metric families in Redis (%s) was lost (evicted, deleted or "
                "Redis restarted); this process adds its families to it again.",
                self.keys.families,
            )
            self.registered.clear()
        else:
            self.registered.update(sent.register)
        self.epoch = epoch
        self.new_sequences.difference_update(sent.sequences)
        self.new_gauges.difference_update(sent.gauges)
        if sent.args[5] == "1":
            self.live = [_text(p) for p in live]
        return HeartbeatReply(
            reaped=bool(reaped),
            lost=bool(lost),
            created=bool(created),
            fold=[(_text(p), _text(w)) for p, w in zip(to_fold[::2], to_fold[1::2], strict=True)],
            forget=[_text(p) for p in to_forget],
            expire=[_text(n) for n in to_expire],
        )

    def take_missing(
        self, checked: Sequence[str], replies: Sequence[Any], families: Mapping[str, FamilyToFlush]
    ) -> None:
        """Whether each ``checked`` family still holds this process's sequence number
        (HEXISTS replies): one that does not was lost with it (evicted, deleted), and its
        series are written again."""
        for name, exists in zip(checked, replies, strict=True):
            if isinstance(exists, Exception) or exists:
                continue
            self.acked[name] = 0
            if name in families:
                self.write_family_again(families[name])

    def write_family_again(self, family: FamilyToFlush) -> None:
        """Redis lost this family: send its series again at the next flush.

        Gauges, info and state sets as they are; counters, histograms and summaries as
        a change of zero, which makes each series show again with what is counted from
        now on (a reset, which Prometheus's rate() handles).
        """
        resend = family.metric.definition.type in ("gauge", "info", "stateset")
        for child in family.metric.children():
            entry = self.shadow.get(child)
            if entry is None:
                continue
            if resend:
                self.shadow[child] = (entry[0], None)
            else:
                self.announce.add(child)
        self.help_due.add(family.name)
        self.registered.discard(family.name)

    def gauges_written(self, families: Iterable[FamilyToFlush]) -> list[tuple[str, list[str]]]:
        """FOLD calls for the gauge values this process wrote: (family, mode and series
        alternating), at most ``FOLD_CALL`` values a call (a call holds Redis: 10,000
        gauge series in one took 150 ms)."""
        out: list[tuple[str, list[str]]] = []
        for family in families:
            d = family.metric.definition
            if d.type != "gauge":
                continue
            args: list[str] = []
            for child in family.metric.children():
                entry = self.shadow.get(child)
                if entry is not None and entry[1] is not None:
                    args += (d.multiprocess_mode, entry[0])
            for at in range(0, len(args), 2 * FOLD_CALL):
                out.append((family.name, args[at : at + 2 * FOLD_CALL]))
        return out

    def forget_gauges(self, families: Iterable[FamilyToFlush]) -> None:
        """This process's gauge values were folded away: write them again."""
        for family in families:
            if family.metric.definition.type == "gauge":
                for child in family.metric.children():
                    entry = self.shadow.get(child)
                    if entry is not None:
                        self.shadow[child] = (entry[0], None)

    def take_write(
        self,
        chunk: Chunk,
        reply: Any,
        *,
        first: bool = True,
        on_lost: Callable[[str], None],
        on_error: Callable[[Chunk, Exception], None],
    ) -> bool:
        """Apply a WRITE's answer to the chunk (see the module docstring); return whether
        Redis holds the chunk now (applied by this call or before)."""
        if isinstance(reply, Exception):
            if chunk.applied is None:
                self.undo(chunk)
            on_error(chunk, reply)
            return False
        status, other, lost, malformed, dropped = reply
        status = int(status)
        name = chunk.name
        if status in (0, 1, 3):
            if chunk.applied is None:
                chunk.applied = time.monotonic()
            self.acked[name] = max(self.acked.get(name, 0), chunk.seq)
            waited = self.conflicts.pop(name, None)
            if status == 3:
                logger.warning(
                    "Metric %r changed definition: Redis held %s, which no live process "
                    "holds any more, so this process's %s replaces it. The %d fields stored "
                    "under the old definition were dropped; what processes count under the "
                    "new one (including what they kept while the old one was in use) is "
                    "written from now on.",
                    name,
                    _text(other),
                    chunk.definition,
                    int(dropped),
                )
            elif waited is not None and status == 1:
                logger.info(
                    "Metric %r: Redis now holds this process's definition; the values kept "
                    "while another one was in use are sent.",
                    name,
                )
            if malformed:
                logger.error(
                    "Redis holds malformed values of metric %r at %s, fields %s; this "
                    "process's changes to them were not written. Delete those fields "
                    "(HDEL) to let them start again.",
                    name,
                    self.keys.family(name),
                    ", ".join(map(repr, map(_text, malformed))),
                )
            if int(lost):
                on_lost(name)
            return True
        if status == -1 and first and other not in (None, "") and int(_text(other)) < chunk.seq - 1:
            # The first chunk of its family in this flush, and Redis's sequence stops
            # before it: Redis lacks chunks that it had applied (a failover, a restore).
            self.gaps[name] = int(_text(other))
        if chunk.applied is None:
            self.undo(chunk)
        if status == 2:
            other = _text(other)
            if self.conflicts.get(name) != other:
                logger.warning(
                    "Metric %r is stored in Redis as %s, which a live process still holds, "
                    "but this process defines it as %s. This process keeps its values of it "
                    "and sends them once no live process holds the other definition (after "
                    "a rolling deploy, once the previous release's processes have exited). "
                    "If this lasts, another service defines %r differently under the same "
                    "prefix: give each service a prefix of its own.",
                    name,
                    other,
                    chunk.definition,
                    name,
                )
            self.conflicts[name] = other
        return False

    def take_writes(
        self,
        chunks: Sequence[Chunk],
        replies: Sequence[Any],
        *,
        on_lost: Callable[[str], None],
        on_error: Callable[[Chunk, Exception], None],
    ) -> list[bool]:
        """Apply the answers to a flush's chunks, in order; return which ones Redis holds."""
        seen: set[str] = set()
        held = []
        for chunk, reply in zip(chunks, replies, strict=True):
            first = chunk.name not in seen
            seen.add(chunk.name)
            held.append(
                self.take_write(chunk, reply, first=first, on_lost=on_lost, on_error=on_error)
            )
        return held

    # ------------------------------------------------------------------ replication (WAIT)

    def take_unconfirmed(self) -> list[Chunk]:
        """The applied chunks that no replica confirmed yet, taken to go first in the next
        flush (they come back through :meth:`settle_replication` unless confirmed)."""
        chunks, self.unconfirmed = self.unconfirmed, []
        return chunks

    def settle_replication(
        self,
        chunks: Sequence[Chunk],
        held: Sequence[bool],
        *,
        confirmed: bool,
        keep: bool,
        retention: float,
    ) -> None:
        """After a flush's answers: forget the chunks that Redis holds and replicas
        confirmed (``confirmed``: the flush ended with a WAIT that enough replicas
        answered), keep the other applied ones (``keep``: wait_replicas > 0) for at most
        ``retention`` seconds, and carry on from where Redis's sequence stops for the
        families it lacks chunks of (:attr:`gaps`).
        """
        gaps, self.gaps = self.gaps, {}
        kept: list[Chunk] = []
        if keep:
            oldest = time.monotonic() - retention
            for chunk, ok in zip(chunks, held, strict=True):
                if chunk.applied is None or (ok and confirmed):
                    continue
                if chunk.applied < oldest and chunk.name not in gaps:
                    self.forgotten += 1
                    continue
                kept.append(chunk)
            if confirmed:
                self.forgotten = 0
        for name, stops in gaps.items():
            # Redis holds this family up to chunk `stops` of this process and lacks what
            # came after. The applied chunks kept here go again, numbered from there;
            # those given up (or confirmed by a replica that was not the one promoted)
            # are lost.
            seq = stops
            for chunk in kept:
                if chunk.name == name:
                    seq += 1
                    chunk.seq = seq
            logger.warning(
                "Redis lacks changes of metric %r that it had acknowledged (a failover to a "
                "replica that had not received them, or a restore from an older copy): "
                "this process carries on from what Redis holds; %s",
                name,
                f"the {seq - stops} writes it still kept are sent again."
                if seq > stops
                else "what it had sent since is lost.",
            )
            self.acked[name] = seq
        self.unconfirmed = kept + self.unconfirmed


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def is_out_of_memory(exc: Exception) -> bool:
    """Whether Redis refused a write for want of memory (maxmemory, noeviction)."""
    return isinstance(exc, redis.exceptions.OutOfMemoryError) or str(exc).startswith(
        "command not allowed when used memory"
    )


#: Gauge values of each gone process folded per housekeeping turn, and sequence numbers
#: of each reaped one forgotten: a few milliseconds of Redis's time per turn, in calls of
#: one family each.
FOLD_BATCH = 200
FORGET_BATCH = 200
#: Values per FOLD call, idle series per EXPIRE call.
FOLD_CALL = 200
EXPIRE_CALL = 200


class Housekeeping:
    """The work of one housekeeping turn (see ``HEARTBEAT``), in up to three rounds of
    one pipeline each, by the process that took the turn (its flusher thread):

    1. take: a batch of the gauge values each gone process wrote and of the families that
       hold a sequence number of each reaped one (neither removed yet); the idle series
       of a few families are expired (EXPIRE, one call per family);
    2. apply: FOLD those values, one call per process and family; delete those sequence
       numbers; a process with nothing left to fold or forget is done with;
    3. done: remove what was folded and forgotten from each process's lists.

    Every step can be done twice (two turns at once, a round that failed or a process
    killed halfway, and a later turn): a value folded once is gone, and a sequence number
    deleted once stays so. What a failed round leaves is a later turn's.
    """

    def __init__(self, keys: KeyLayout, reply: HeartbeatReply, ttl: float) -> None:
        self.keys = keys
        self.fold, self.forget, self.expire = reply.fold, reply.forget, reply.expire
        self.ttl = ttl
        self.folding: dict[str, list[str]] = {}  # process -> gauge entries taken
        self.forgetting: dict[str, list[str]] = {}  # process -> families taken
        # Round 2's calls: (process, its entries folded or families forgotten, which).
        self.calls: list[tuple[str, list[str], bool] | None] = []
        self.finished: dict[str, list[str]] = {}  # process -> gauge entries folded
        self.forgotten: dict[str, list[str]] = {}  # process -> families forgotten

    def __bool__(self) -> bool:
        return bool(self.fold or self.forget or (self.expire and self.ttl > 0))

    def take(self, pipe: Any, shas: Mapping[str, str]) -> None:
        keys = self.keys
        for process, _ in self.fold:
            pipe.srandmember(keys.gauges_of(process), FOLD_BATCH)
        for process in self.forget:
            pipe.srandmember(keys.sequences_of(process), FORGET_BATCH)
        if self.ttl > 0:
            for name in self.expire:
                fam, touched = keys.family(name), keys.touched(name)
                pipe.evalsha(shas["EXPIRE"], 2, fam, touched, self.ttl, EXPIRE_CALL)

    def took(self, replies: Sequence[Any]) -> None:
        taken = iter(replies)
        for (process, _), reply in zip(self.fold, taken, strict=False):
            if not isinstance(reply, Exception):  # else: at a later turn
                self.folding[process] = [_text(e) for e in reply]
        for process, reply in zip(self.forget, taken, strict=False):
            if not isinstance(reply, Exception):
                self.forgetting[process] = [_text(n) for n in reply]

    def apply(self, pipe: Any, shas: Mapping[str, str]) -> None:
        keys = self.keys
        went = dict(self.fold)
        for process, entries in self.folding.items():
            if not entries:
                pipe.zrem(keys.fold, process)  # all folded: the process is gone for good
                self.calls.append(None)
                continue
            by_family: dict[str, list[tuple[str, str, str]]] = {}
            for entry in entries:
                parts = entry.split("\0", 2)
                if len(parts) == 3:
                    by_family.setdefault(parts[1], []).append((entry, parts[0], parts[2]))
            self.finished[process] = [e for e in entries if e.count("\0") < 2]  # malformed
            for name, batch in by_family.items():
                args = [process, went[process]]
                for _, mode, series in batch:
                    args += (mode, series)
                pipe.evalsha(shas["FOLD"], 1, keys.family(name), *args)
                self.calls.append((process, [entry for entry, _, _ in batch], False))
        for process, names in self.forgetting.items():
            if not names:
                pipe.zrem(keys.dead, process)  # all forgotten: the process is gone for good
                self.calls.append(None)
                continue
            field = "\0q\0" + process
            for name in names:
                pipe.hdel(keys.family(name), field)
                self.calls.append((process, [name], True))

    def applied(self, replies: Sequence[Any]) -> None:
        for call, reply in zip(self.calls, replies, strict=False):
            if call is not None and not isinstance(reply, Exception):
                process, items, forgotten = call
                done = self.forgotten if forgotten else self.finished
                done.setdefault(process, []).extend(items)

    def done(self, pipe: Any, shas: Mapping[str, str]) -> None:
        keys = self.keys
        for process, entries in self.finished.items():
            if entries:
                gauges = keys.gauges_of(process)
                pipe.evalsha(shas["FOLDED"], 2, keys.fold, gauges, process, *entries)
        for process, names in self.forgotten.items():
            pipe.srem(keys.sequences_of(process), *names)
