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


def calls(chunks: Sequence[Chunk]) -> list[list[Chunk]]:
    """The chunks of a flush, in order, grouped into WRITE calls that cost at most
    ``CHUNK_COST`` each (a chunk is never split): many small families, one call."""
    out: list[list[Chunk]] = []
    cost = CHUNK_COST
    for chunk in chunks:
        if cost + CHUNK_OVERHEAD + chunk.cost > CHUNK_COST:
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
        ttl: float,
        known: bool,
        leave: float | None,
        housekeeping: bool,
        families: Iterable[str],
    ) -> tuple[list[str], list[Any], list[str], list[str]]:
        """KEYS and ARGV of a HEARTBEAT, the families it checks and the ones it registers."""
        keys = self.keys
        # A process that leaves need not check its families any more, but it lists them:
        # one that lived for one flush, its last, would not have otherwise.
        checked = [] if leave is not None else [n for n, s in self.acked.items() if s > 0]
        register = [n for n in families if n not in self.registered]
        script_keys = [
            keys.procs,
            keys.last,
            keys.dead,
            keys.fold,
            keys.families,
            keys.touched,
            keys.left,
            *map(keys.family, checked),
        ]
        args: list[Any] = [
            keys.shared,
            keys.family_open,
            process,
            timeout,
            retention,
            ttl,
            HOUSEKEEPING_MS if housekeeping else 0,
            "1" if known else "0",
            "" if leave is None else leave,
            *register,
        ]
        return script_keys, args, checked, register

    def write_args(
        self,
        chunks: Sequence[Chunk],
        *,
        process: str,
        timeout: float,
        ttl: bool,
        modes: Mapping[str, str],
    ) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of one WRITE call carrying ``chunks`` (see :func:`calls`)."""
        keys = self.keys
        script_keys = [
            keys.procs,
            keys.last,
            keys.gauges_of(process),
            keys.sequences_of(process),
            keys.touched,
            keys.left,
            *(keys.family(c.name) for c in chunks),
        ]
        args: list[Any] = [process, timeout, "1" if ttl else "0"]
        for chunk in chunks:
            args += (
                chunk.name,
                chunk.seq,
                "1" if chunk.may_replace else "0",
                chunk.definition,
                "" if chunk.help is None else "=" + chunk.help,
                chunk.kind,
                modes.get(chunk.name, ""),
                len(chunk.fields) // 2,
                *chunk.fields,
            )
        return script_keys, args

    # ------------------------------------------------------------------ answers

    def take_heartbeat(
        self,
        reply: Sequence[Any],
        checked: Sequence[str],
        registered: Sequence[str],
        families: Mapping[str, FamilyToFlush],
    ) -> tuple[bool, bool, bool]:
        """Apply a HEARTBEAT's answer; return (reaped, lost, made the list of families)."""
        reaped, lost, epoch, created, missing = reply
        epoch = _text(epoch)
        if self.epoch is not None and epoch != self.epoch:
            logger.warning(
                "The list of metric families in Redis (%s) was lost (evicted, deleted or "
                "Redis restarted); this process adds its families to it again.",
                self.keys.families,
            )
            self.registered.clear()
        else:
            self.registered.update(registered)
        self.epoch = epoch
        for position in missing:
            name = checked[int(position) - 1]
            # The family's hash was lost with this process's sequence number: start again.
            self.acked[name] = 0
            if name in families:
                self.write_family_again(families[name])
        return bool(reaped), bool(lost), bool(created)

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
        if status == -1 and first and other not in (None, "") and int(other) < chunk.seq - 1:
            # The first chunk of its family in this flush, and Redis's sequence stops
            # before it: Redis lacks chunks that it had applied (a failover, a restore).
            self.gaps[name] = int(other)
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
