"""Exact metrics across processes and hosts, through Redis, without Redis on the hot path.

::

    from pytheus.backends import load_backend
    from pytheus.backends.redis import MultiProcessRedisBackend

    load_backend(
        backend_class=MultiProcessRedisBackend,
        backend_config={"host": "127.0.0.1", "port": 6379},
    )

How it works:

* Recording stays in-process and lock-cheap, as with the in-memory backend.
* A background thread *flushes* every ``flush_interval`` seconds: it takes the change of
  every series since the last flush (deltas for counters, histograms and summaries; the
  process's current value for gauges) and applies them in one pipelined round trip, in
  short Lua scripts of a bounded size (:mod:`~pytheus.backends.redis_flush`): each
  series is applied whole, at most once, and no script holds Redis for long.
* A scrape flushes this process's pending changes and reads every metric, including
  those only other processes defined, family by family in bounded slices
  (:mod:`~pytheus.backends.redis_read`); a ``name[]`` scrape reads only those families.
* When Redis is unreachable (or refuses writes, out of memory), nothing raises into the
  application: changes stay pending in the metric objects (memory bounded by the number
  of series) and are applied when Redis takes them. Scrapes raise
  :class:`~pytheus.exceptions.BackendUnavailableError` when they cannot read.
* Processes heartbeat with every flush. A process silent for ``process_timeout`` seconds
  is reaped: its gauge values are folded according to each gauge's
  ``multiprocess_mode`` and its keys deleted, so dead workers leave nothing behind but
  their counts.
* A metric whose definition changes in a deploy (other buckets, labels) is taken over by
  the new definition once no live process holds the old one; what the new processes
  counted meanwhile is kept and then sent.

The parts, each in a module of its own: the options and the client they make
(:mod:`~pytheus.backends.redis_config`), where each thing is kept
(:mod:`~pytheus.backends.redis_keys`) and in which format
(:mod:`~pytheus.backends.redis_format`), the Lua scripts
(:mod:`~pytheus.backends.redis_scripts`), the writing side
(:mod:`~pytheus.backends.redis_flush`) and the reading side
(:mod:`~pytheus.backends.redis_read`). This module ties them to a process's life: its
flusher thread, fork, exit, and the backend protocol.
"""

from __future__ import annotations

import codecs
import logging
import multiprocessing.util
import os
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any

try:
    import redis
    from redis.cluster import RedisCluster
    from redis.exceptions import RedisClusterException
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "The Redis backend needs the redis package: pip install redis hiredis (the 'redis' "
        "extra of this package)"
    ) from exc

from pytheus.backends import close_backend, redis_scripts
from pytheus.backends.redis_config import (
    REDIS_ERRORS,
    RedisConfig,
    eviction_risk,
    replication_risk,
)
from pytheus.backends.redis_flush import (
    Chunk,
    FamilyToFlush,
    Housekeeping,
    Writer,
    calls,
    is_out_of_memory,
    shadow_value,
)
from pytheus.backends.redis_format import canonical_definition, series_key
from pytheus.backends.redis_keys import KeyLayout
from pytheus.backends.redis_read import PROCESS_LABEL, Reader, Scrape
from pytheus.definitions import MetricDefinition, MetricSeries, SeriesSource
from pytheus.exceptions import (
    BackendUnavailableError,
    MetricDefinitionError,
)
from pytheus.gcpause import gc_paused
from pytheus.samples import EMPTY_LABELS, MetricFamily

__all__ = ["MultiProcessRedisBackend", "eviction_risk", "replication_risk"]

# socket.getaddrinfo() imports the idna codec on first use. Imported here, not by the
# flusher's first connection: a fork() in the middle of that import (gunicorn --preload
# forking workers just as the master's flusher first connects) leaves the module's
# import lock held in the child for ever, and the child can never connect to Redis
# ("LookupError: unknown encoding: idna" on every flush and scrape).
codecs.lookup("idna")

logger = logging.getLogger(__name__)

# How long a reaped process's sequence numbers are kept, so that a flush it retries
# after a lost reply is still recognised as a duplicate. (Those of a process that exited
# are kept only while its last flush can be retried: see RedisConfig.leave_retention.)
_SEQ_RETENTION = 24 * 3600.0
_RLOCK = type(threading.RLock())
# Rediscovery of families after the list of families was lost: SCAN calls per flush.
_REDISCOVER_CALLS = 10
# Every how many flushes of the flusher a process checks that the families it wrote to
# still hold its sequence number (Redis lost them: evicted, deleted).
_CHECK_EVERY = 10
# FOLD's "when the process went" for a process folding its own values as it leaves.
_ALWAYS = "1e300"


class _WriteThroughLock:
    """A series lock that flushes its backend when released: ``flush_interval=0``."""

    __slots__ = ("_lock", "_backend")

    def __init__(self, backend: MultiProcessRedisBackend) -> None:
        self._lock = threading.Lock()
        self._backend = backend

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        self._lock.release()
        self._backend._write_through()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class _Flush:
    """One flush's part of a pipeline: a HEARTBEAT, the WRITEs of its chunks, and now and
    then a look at whether the families this process wrote to still know it."""

    def __init__(
        self,
        backend: MultiProcessRedisBackend,
        chunks: list[Chunk],
        families: Mapping[str, FamilyToFlush],
        *,
        leave: bool = False,
        housekeeping: bool = True,
        check: bool = False,
    ) -> None:
        self.backend = backend
        self.chunks = chunks
        self.families = families
        cfg = backend.config
        writer = backend._writer
        self.leave = leave
        # A scrape's flush (no housekeeping) never waits: the next flusher's confirms it.
        self.wait = cfg.wait_replicas if housekeeping else 0
        self.heartbeat = writer.heartbeat_args(
            process=backend._process,
            timeout=cfg.process_timeout,
            retention=_SEQ_RETENTION,
            known=backend._known,
            leave=cfg.leave_retention if leave else None,
            turn_ms=cfg.turn_ms if housekeeping and not leave else 0,
            expiry=cfg.series_ttl > 0,
            families=families,
        )
        # A family that lost this process's sequence number is found by the WRITE that
        # next changes it; one that no series of this process changes, by this check.
        self.checked = writer.checked_families() if check and not leave else []
        # A process that leaves folds its own gauge values at once, in the same round
        # trip: a summed gauge must not dip until the next housekeeping turn.
        self.own_gauges = writer.gauges_written(families.values()) if leave else []
        self.calls = calls(chunks, one_family=cfg.cluster)
        self.writes = [
            writer.write_args(group, process=backend._process, ttl=cfg.series_ttl > 0)
            for group in self.calls
        ]
        self.waits = self._waits()

    def __len__(self) -> int:
        folds = len(self.own_gauges) + (1 if self.own_gauges else 0)
        return 1 + len(self.writes) + folds + len(self.checked) + len(self.waits)

    def _waits(self) -> list[Any]:
        """Where the flush ends with a WAIT: None (the one Redis), or each cluster node
        it writes to (a WAIT counts the writes made on its own connection)."""
        if not self.wait:
            return []
        backend = self.backend
        if not backend.config.cluster:
            return [None]
        client: Any = backend.client
        keys = [backend.keys.procs, *(k[0] for k, _ in self.writes)]
        keys += (backend.keys.family(name) for name, _ in self.own_gauges)
        nodes = {}
        for key in keys:
            node = client.get_node_from_key(key)
            nodes[node.name] = node
        return list(nodes.values())

    def add(self, pipe: Any) -> None:
        shas = self.backend._shas
        beat = self.heartbeat
        # A process that leaves does so after its last changes: its gauge values, folded
        # as it leaves, must all be there already.
        if not self.leave:
            pipe.evalsha(shas["HEARTBEAT"], len(beat.keys), *beat.keys, *beat.args)
        for write_keys, write_args in self.writes:
            pipe.evalsha(shas["WRITE"], len(write_keys), *write_keys, *write_args)
        if self.leave:
            pipe.evalsha(shas["HEARTBEAT"], len(beat.keys), *beat.keys, *beat.args)
            process = self.backend._process
            for name, args in self.own_gauges:
                fam = self.backend.keys.family(name)
                pipe.evalsha(shas["FOLD"], 1, fam, process, _ALWAYS, *args)
            if self.own_gauges:
                # What a housekeeping turn would otherwise fold (again: no harm).
                pipe.delete(self.backend.keys.gauges_of(process))
        field = "\0q\0" + self.backend._process
        for name in self.checked:
            pipe.hexists(self.backend.keys.family(name), field)
        # On the connection that wrote: WAIT counts what replicas have of the writes this
        # connection made, which the retry of a broken pipeline makes again. In a cluster,
        # one per node written to, on that node's connection of this pipeline.
        block = self.backend.config.wait_block_ms
        for node in self.waits:
            if node is None:
                pipe.execute_command("WAIT", self.wait, block)
            else:
                pipe.execute_command("WAIT", self.wait, block, target_nodes=node)

    def confirmed(self, replies: Sequence[Any]) -> bool:
        """Whether the flush's WAITs say enough replicas have everything it wrote."""
        if not self.wait:
            return False
        answers = replies[len(self) - len(self.waits) : len(self)]
        for answer in answers:
            if isinstance(answer, Exception):
                self.backend._wait_refused(answer)
                return False
        return bool(answers) and all(int(a) >= self.wait for a in answers)

    def replies(self, replies: Sequence[Any]) -> tuple[Any, list[Any], Sequence[Any]]:
        """The HEARTBEAT's reply, each chunk's and the checks', from this flush's part of
        a pipeline (a call refused whole, out of memory say, is each of its chunks' answer)."""
        n = len(self.writes)
        if self.leave:
            heartbeat, writes = replies[n], replies[:n]
        else:
            heartbeat, writes = replies[0], replies[1 : n + 1]
        per_chunk: list[Any] = []
        for group, reply in zip(self.calls, writes, strict=True):
            per_chunk += [reply] * len(group) if isinstance(reply, Exception) else reply
        checks_end = len(self) - len(self.waits)
        return heartbeat, per_chunk, replies[checks_end - len(self.checked) : checks_end]


class MultiProcessRedisBackend:
    """Aggregates metrics of many processes in Redis; see the module docstring.

    Options (all optional): ``url`` (``redis://``, ``rediss://``, ``unix://``), or
    ``host`` (127.0.0.1), ``port`` (6379), ``db``, ``username``, ``password``; or the
    connection settings of a ``client`` (``redis.Redis``) or ``connection_pool``, with
    ``db`` to use another database than theirs (the backend makes a pool of its own from
    them, with its own timeouts). ``prefix`` namespaces the keys ("pytheus"; no braces
    or spaces), ``flush_interval`` is seconds between flushes (1.0; 0 writes every
    change through before the call returns: a round trip per operation, for scripts
    and tests rather than web workers), ``process_timeout`` is how long a silent
    process counts as alive, ``series_ttl`` (off by default) deletes a series that no
    process has written for that many seconds (its counters restart from zero if it is
    written again, which Prometheus reads as a counter reset; a gauge loses only what
    dead processes left, since a live process's value is current), ``socket_timeout`` (5)
    and ``socket_connect_timeout`` (2) bound every call, whatever the pool, and
    ``connection_options`` go to ``redis.Redis``.

    Redis Sentinel: ``sentinels`` (``[[host, port], ...]``) and ``service_name`` instead of
    an address, with ``sentinel_username``/``sentinel_password`` for the sentinels' own
    authentication. ``wait_replicas`` (1 with Sentinel, else 0) is how many replicas must
    confirm a flush (``WAIT``, in the flusher thread) before this process forgets its
    changes, which it sends again meanwhile; ``wait_timeout`` (5) is how long it keeps
    them unconfirmed (see :mod:`~pytheus.backends.redis_flush` and docs/scaling.md).
    """

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        cfg = RedisConfig(config)
        self.config = cfg
        self.client: redis.Redis | RedisCluster = cfg.client
        #: The names of the keys this backend uses.
        self.keys = KeyLayout(cfg.prefix)
        self._shas = {
            name: self.client.register_script(source).sha
            for name, source in redis_scripts.SCRIPTS.items()
        }

        # Everything below is guarded by _flush_lock, except the definitions, which have
        # a lock of their own: a flush holds _flush_lock across its network call, and a
        # definition (at import time) must not wait for it when Redis does not answer.
        self._flush_lock = threading.Lock()
        self._defs_lock = threading.Lock()  # taken after _flush_lock, never before
        # Held while a flush reads the series (taking their locks), not while it waits
        # on the network: what fork() waits for, see _before_fork.
        self._build_lock = threading.Lock()
        self._pool_lock: Any = None  # redis-py's, held by the forking thread across fork()
        self._pid = os.getpid()  # the process whose flush state this is
        self._metrics: dict[str, Any] = {}  # name -> Metric (or _Stat)
        self._defs: dict[str, str] = {}  # name -> canonical definition
        self._writer = Writer(self.keys)
        self._reader = Reader(self.keys, cfg.process_timeout)
        # Set while this thread reads series for a flush, so that the write-through
        # locks released by those reads do not flush again.
        self._flushing = threading.local()
        self._failing = False  # Redis unreachable
        self._in_flight: list[Chunk] = []  # the chunks of the flush waiting for Redis
        self._refused = False  # Redis refuses writes (out of memory, ...)
        self._closed = False
        self._last_success = 0.0
        self._eviction_checked = False
        self._rediscover: int | None = None  # SCAN cursor while families are looked for
        self._wait_error_logged = False
        self._stats = _SelfMetrics()
        for stat in self._stats.all():
            self._remember(stat)
        self._new_process()

        self._wakeup = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_flusher()
        this = weakref.ref(self)

        def before() -> None:
            if (backend := this()) is not None:
                backend._before_fork()

        def after(child: bool) -> Callable[[], None]:
            def run() -> None:
                if (backend := this()) is not None:
                    backend._after_fork(child)

            return run

        os.register_at_fork(before=before, after_in_parent=after(False), after_in_child=after(True))
        # A multiprocessing child (fork or forkserver) leaves through os._exit, which
        # skips atexit: its exit finalizers are the last chance to flush.
        _close_at_multiprocessing_exit(self)
        multiprocessing.util.register_after_fork(self, _close_at_multiprocessing_exit)

    def __repr__(self) -> str:
        return f"<MultiProcessRedisBackend {self.config.where()} prefix={self.config.prefix!r}>"

    # ------------------------------------------------------------------ definitions

    def register_metric(self, metric: SeriesSource) -> None:
        """Check that the metric can be stored and remember it; no network I/O.

        A definition that differs from the one Redis holds is not refused: it is what a
        deploy that changes a metric looks like (see the module docstring).
        """
        d = metric.definition
        if d.quantiles:
            raise MetricDefinitionError(
                f"Summary {d.name!r} asks for quantiles, which cannot be aggregated across "
                "processes: MultiProcessRedisBackend keeps only _sum and _count. Drop "
                "quantiles=, or use a Histogram and histogram_quantile() in PromQL."
            )
        if d.multiprocess_mode in ("all", "liveall") and PROCESS_LABEL in d.labelnames:
            raise MetricDefinitionError(
                f"Gauge {d.name!r} with multiprocess_mode={d.multiprocess_mode!r} gets a "
                f"{PROCESS_LABEL!r} label per process, so it cannot have a label of that "
                "name itself."
            )
        if self.config.flush_interval <= 0:
            metric.use_lock_factory(self._write_through_lock)
        with self._defs_lock:
            self._remember(metric)

    def _remember(self, metric: Any) -> None:
        name = metric.definition.name
        self._metrics[name] = metric
        self._defs[name] = canonical_definition(metric.definition)

    def _families(self) -> dict[str, FamilyToFlush]:
        with self._defs_lock:
            return {
                name: FamilyToFlush(name, metric, self._defs[name], metric.definition.help)
                for name, metric in self._metrics.items()
            }

    # ------------------------------------------------------------------ flushing

    def _write_through_lock(self) -> _WriteThroughLock:
        return _WriteThroughLock(self)

    def _write_through(self) -> None:
        """Flush after a change (write-through mode), unless this is a flush's own read.

        While Redis is failing, changes wait for the background thread instead: the
        application must not wait for a timeout on every operation.
        """
        if (
            self._closed
            or self._failing
            or self._refused
            or getattr(self._flushing, "active", False)
        ):
            return
        # In a child, before this backend's after-fork hook has run (another hook reading
        # series, or this one): its flush state is still the parent's, so wait for it.
        if self._pid != os.getpid():
            return
        self._flush(housekeeping=False)  # the flusher's job: not in the application's time

    def _new_process(self) -> None:
        self._process = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        # When the last successful flush started (perf_counter): see _take_flush.
        self._last_ok_start = time.perf_counter()
        # Whether Redis took a heartbeat of this process: only then can it lose it.
        self._known = False
        self._housekeeping: Housekeeping | None = None  # the work of a turn taken
        self._flushes = 0
        self._stats_sent = -1.0  # the error count the statistics were last sent with

    def _prepare_flush(self, *, leave: bool = False, housekeeping: bool = True) -> _Flush:
        """What to send: the chunks left without an answer, else what changed since the
        last flush (built under the build lock); holds _flush_lock. A scrape's flush
        leaves the housekeeping to the flushers: it would only make the scrape longer."""
        families = self._families()
        writer = self._writer
        check = False
        if housekeeping:
            self._flushes += 1
            check = self._flushes % _CHECK_EVERY == 0
        # What no replica confirmed goes first, before any newer chunk of its family.
        unconfirmed = writer.take_unconfirmed()
        if writer.pending:
            chunks, writer.pending = writer.pending, []
        else:
            # Written only by a flush that succeeds, so "now" is the time of that flush.
            self._stats.last_flush.value = time.time()
            # The backend's own statistics change at every flush: sent with every tenth
            # of the flusher's (and the last), or at once when there are new errors, not
            # as a WRITE of their own at every flush of every process.
            errors = self._stats.errors.value
            stats = leave or errors != self._stats_sent or (check and housekeeping)
            if stats:
                self._stats_sent = errors
            own = self._stats.names
            self._flushing.active = True
            try:
                with self._build_lock:
                    chunks = writer.build(
                        f for f in families.values() if stats or f.name not in own
                    )
            finally:
                self._flushing.active = False
            self._stats.pending.value = float(sum(len(c.undo) for c in chunks))
        chunks = unconfirmed + chunks
        return _Flush(self, chunks, families, leave=leave, housekeeping=housekeeping, check=check)

    def _execute(self, add: Callable[[Any], object]) -> list[Any]:
        """Run the commands ``add`` puts in a pipeline, in one round trip; every reply,
        errors included (a refused write must not hide the reads beside it).

        Not with redis-py's pipelined Script objects: they ask Redis whether the scripts
        exist before every pipeline, a second round trip. The scripts are loaded only when
        Redis answers NOSCRIPT (after a restart), then the pipeline is sent again, which
        is safe: a WRITE that did run is known by its sequence number.
        """

        def once() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            add(pipe)
            return list(pipe.execute(raise_on_error=False))

        replies = once()
        if any(isinstance(r, redis.exceptions.NoScriptError) for r in replies):
            for source in redis_scripts.SCRIPTS.values():
                self.client.script_load(source)
            replies = once()
        return replies

    def _take_flush(self, flush: _Flush, replies: Sequence[Any], duration: float) -> bool:
        """Apply the answers to a flush; return whether Redis took all of it."""
        writer = self._writer
        heartbeat, writes, checks = flush.replies(replies)
        took = not isinstance(heartbeat, Exception)
        refusal: Exception | None = None
        if took:
            self._take_heartbeat(flush, heartbeat, checks, duration)
        elif _unanswered(heartbeat):
            took = False
        else:
            refusal = heartbeat

        def lost_family(name: str) -> None:
            if name in flush.families:
                writer.write_family_again(flush.families[name])

        def refused(chunk: Chunk, exc: Exception) -> None:
            nonlocal refusal, took
            took = False
            refusal = refusal or exc

        # Applied or not, nobody knows for a chunk whose node did not answer (a cluster's
        # primary failing over): it is sent again as it is, which Redis applies once.
        unanswered = [c for c, r in zip(flush.chunks, writes, strict=True) if _unanswered(r)]
        answered = [(c, r) for c, r in zip(flush.chunks, writes, strict=True) if not _unanswered(r)]
        chunks = [c for c, _ in answered]
        held = writer.take_writes(
            chunks, [r for _, r in answered], on_lost=lost_family, on_error=refused
        )
        self._settle_replication(flush, chunks, held, replies)
        if unanswered:
            writer.pending = unanswered + writer.pending
            self._record_failure(next(r for r in writes if _unanswered(r)))
            return False
        if refusal is not None:
            self._record_refusal(refusal)
            return False
        if not took:
            self._record_failure(heartbeat)
            return False
        if self._failing:
            logger.warning("pytheus reaches Redis again; pending metrics were sent.")
        elif self._refused:
            logger.warning("Redis stores metrics again; pending metrics were sent.")
        self._failing = self._refused = False
        self._last_success = time.time()
        self._stats.flush_seconds.value += duration
        return took

    def _take_heartbeat(
        self, flush: _Flush, heartbeat: Any, checks: Sequence[Any], duration: float
    ) -> None:
        writer = self._writer
        beat = writer.take_heartbeat(heartbeat, flush.heartbeat)
        now = time.perf_counter()
        # Silent for process_timeout or more (an outage, a stall): this process may have
        # been reaped even if the reply saying so was lost.
        silent = now - self._last_ok_start >= self.config.process_timeout
        self._last_ok_start = now - duration
        if beat.lost and self._known:
            logger.warning(
                "Redis no longer holds this process's metrics (restarted without "
                "persistence, flushed, failed over or evicted?); writing them again: "
                "gauges, info and state sets as they are, counters from what was counted "
                "since the last flush (a reset)."
            )
            for family in flush.families.values():
                writer.write_family_again(family)
        elif beat.reaped or silent:
            writer.forget_gauges(flush.families.values())
        if beat.created:
            self._rediscover = 0
        self._known = True
        work = Housekeeping(self.keys, beat, self.config.series_ttl)
        if work:
            self._housekeeping = work
        writer.take_missing(flush.checked, checks, flush.families)

    def _settle_replication(
        self, flush: _Flush, chunks: Sequence[Chunk], held: Sequence[bool], replies: Sequence[Any]
    ) -> None:
        """What the flush's WAIT (if any) confirmed is forgotten, the rest of what Redis
        applied is kept to be sent again (see :mod:`~pytheus.backends.redis_flush`)."""
        cfg = self.config
        writer = self._writer
        forgotten = writer.forgotten
        writer.settle_replication(
            chunks,
            held,
            confirmed=flush.confirmed(replies),
            keep=cfg.wait_replicas > 0,
            retention=cfg.wait_timeout,
        )
        if writer.forgotten and not forgotten:
            logger.warning(
                "No %d replica(s) of Redis confirmed this process's metric writes within "
                "wait_timeout (%s s): they are no longer kept here, and a failover before the "
                "replicas catch up can lose them. Check the replicas (INFO replication).",
                cfg.wait_replicas,
                cfg.wait_timeout,
            )
        elif forgotten and not writer.forgotten:
            logger.warning("Redis's replicas confirm this process's metric writes again.")

    def _wait_refused(self, exc: Exception) -> None:
        if not self._wait_error_logged:
            self._wait_error_logged = True
            logger.error(
                "Redis refuses WAIT (%s): no replica can confirm the metrics' writes, so they "
                "are kept for wait_timeout and a failover can lose them. Set wait_replicas=0 "
                "where Redis has no replicas.",
                exc,
            )

    def _record_failure(self, exc: Exception) -> None:
        self._stats.errors.value += 1.0
        if not self._failing:
            self._failing = True
            logger.error(
                "pytheus cannot reach Redis (%s); metrics are kept in this process and "
                "sent when it is back.",
                exc,
            )

    def _record_refusal(self, exc: Exception) -> None:
        self._stats.errors.value += 1.0
        if self._refused:
            return
        self._refused = True
        if is_out_of_memory(exc):
            logger.error(
                "Redis refuses to store metrics: it is out of memory (maxmemory reached, and "
                "its maxmemory-policy evicts nothing it may evict). Metrics are kept in this "
                "process and sent when Redis has room again; scrapes still read what it "
                "holds. Raise maxmemory, or give metrics a Redis of their own."
            )
        else:
            logger.error(
                "Redis refuses to store metrics (%s); they are kept in this process and sent "
                "when it takes them.",
                exc,
            )

    def flush(self) -> bool:
        """Send this process's changes now; return whether Redis took them.

        Never raises on a Redis failure: the changes stay pending for the next flush.
        """
        return self._flush(housekeeping=True)

    def _flush(self, *, housekeeping: bool, leave: bool = False) -> bool:
        with self._flush_lock:
            try:
                if not self._resend_pending(housekeeping=housekeeping):
                    return False
            except REDIS_ERRORS as exc:
                self._record_failure(exc)
                return False
            flush = self._prepare_flush(housekeeping=housekeeping, leave=leave)
            start = time.perf_counter()
            try:
                replies = self._send(flush)
            except REDIS_ERRORS as exc:
                self._writer.pending = flush.chunks
                self._record_failure(exc)
                return False
            took = self._take_flush(flush, replies, time.perf_counter() - start)
            work, self._housekeeping = self._housekeeping, None
        if took:
            self._after_success()
        if work is not None:
            self._housekeep(work)
        return took

    def _housekeep(self, work: Housekeeping) -> None:
        """Do the work of the housekeeping turn this process took (see
        :class:`~pytheus.backends.redis_flush.Housekeeping`); what fails is left to a
        later turn. Without the flush lock: it touches no state of this process."""
        shas = self._shas
        try:
            work.took(self._execute(lambda pipe: work.take(pipe, shas)))
            work.applied(self._execute(lambda pipe: work.apply(pipe, shas)))
            if work.finished or work.forgotten:
                self._execute(lambda pipe: work.done(pipe, shas))
        except REDIS_ERRORS as exc:
            logger.debug("Housekeeping in Redis failed (a later turn does it): %s", exc)

    def _send(self, flush: _Flush) -> list[Any]:
        """Execute a flush's calls; while they wait for Redis, :meth:`unsent` counts its
        chunks (their series' shadows already hold the values being sent)."""
        self._in_flight = flush.chunks
        try:
            return self._execute(flush.add)
        finally:
            self._in_flight = []

    def _resend_pending(self, *, housekeeping: bool = True) -> bool:
        """Send again, as they were, the chunks whose answer was lost; holds _flush_lock.

        Done before anything else, in a round trip of its own: the series of those chunks
        must know what Redis made of them before their next changes are computed.
        """
        if not self._writer.pending:
            return True
        flush = self._prepare_flush(housekeeping=housekeeping)
        start = time.perf_counter()
        try:
            replies = self._send(flush)
        except REDIS_ERRORS:
            self._writer.pending = flush.chunks
            raise
        return self._take_flush(flush, replies, time.perf_counter() - start)

    def _after_success(self) -> None:
        """Checks made once Redis answers: its eviction policy (first contact only)."""
        if not self._eviction_checked:
            self._eviction_checked = True
            try:
                risk = next(
                    (r for r in map(eviction_risk, _infos(self.client, "memory")) if r), None
                )
            except REDIS_ERRORS as exc:  # INFO denied by an ACL, say
                logger.debug("Could not read Redis's maxmemory policy: %s", exc)
                return
            if risk:
                logger.warning("%s (%r)", risk, self)

    def _rediscover_families(self) -> None:
        """After the list of families was lost, find the family hashes that are left (a
        few SCAN calls per flush) and list them again: the families of processes that are
        gone would otherwise never show again."""
        cursor = self._rediscover
        if cursor is None:
            return
        found: list[str] = []
        if self.config.cluster:
            # A SCAN per node: rare (the list was lost) and bounded by the keys there are.
            match = self.keys.family_pattern()
            for key in self.client.scan_iter(match=match, count=1000):
                if (name := self.keys.family_name(_text(key))) is not None:
                    found.append(name)
            cursor = 0
        else:
            for _ in range(_REDISCOVER_CALLS):
                cursor, keys = self.client.scan(
                    cursor, match=self.keys.family_pattern(), count=1000
                )
                found += [n for k in keys if (n := self.keys.family_name(_text(k))) is not None]
                if cursor == 0:
                    break
        if found:
            self.client.hset(self.keys.families, mapping=dict.fromkeys(found, ""))
        self._rediscover = None if cursor == 0 else int(cursor)

    def eviction_risk(self, timeout: float = 1.0) -> str | None:
        """Ask Redis now, within ``timeout`` seconds, whether it may evict our keys (see
        :func:`eviction_risk`; in a cluster, any primary); raise
        :class:`~pytheus.exceptions.BackendUnavailableError` when it does not answer. For
        deployment checks, not for the application's path."""
        infos = self._infos("memory", timeout, "its maxmemory policy")
        return next((r for r in map(eviction_risk, infos) if r), None)

    def replication_risk(self, timeout: float = 1.0) -> str | None:
        """Ask Redis now, within ``timeout`` seconds, whether it has the replicas that
        ``wait_replicas`` waits for (see :func:`replication_risk`; in a cluster, every
        primary); raise :class:`~pytheus.exceptions.BackendUnavailableError` when it does
        not answer. For deployment checks."""
        wanted = self.config.wait_replicas
        if not wanted:
            return None
        infos = self._infos("replication", timeout, "its replicas")
        return next((r for i in infos if (r := replication_risk(i, wanted))), None)

    def _infos(self, section: str, timeout: float, what: str) -> list[Mapping[str, Any]]:
        """``INFO section`` of Redis (of each primary of a cluster), through a client of its
        own that gives up after ``timeout``."""
        client = self.config.checking_client(timeout)
        try:
            return _infos(client, section)
        except REDIS_ERRORS as exc:
            raise BackendUnavailableError(f"cannot ask Redis ({self!r}) for {what}: {exc}") from exc
        finally:
            if client is not self.client and isinstance(client, redis.Redis):
                client.close()
                client.connection_pool.disconnect()

    def status(self) -> dict[str, Any]:
        """Health figures for dashboards: no secrets, no network I/O."""
        # Without _flush_lock, which a flush holds across its network call: a health
        # page must answer at once while Redis hangs. Each field is read once.
        pending = self._writer.pending
        return {
            "backend": type(self).__name__,
            "redis": repr(self),
            "healthy": not (self._failing or self._refused),
            "last_flush": self._last_success or None,
            "pending_series": sum(len(c.undo) for c in pending),
            "errors": self._stats.errors.value,
            "process": self._process,
            "definitions_waiting": sorted(self._writer.conflicts),
        }

    def processes(self) -> list[tuple[str, float]]:
        """The processes reporting to this prefix and the seconds since each one's last
        flush (by Redis's clock), most recent first; for operators (``pytheus_status``).

        Raises :class:`~pytheus.exceptions.BackendUnavailableError` when Redis cannot be
        read. Processes silent for ``process_timeout`` are no longer reporting, even
        before they are reaped.
        """
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.time()
            pipe.zrange(self.keys.procs, 0, -1, withscores=True)
            (seconds, micros), procs = pipe.execute()
        except REDIS_ERRORS as exc:
            raise BackendUnavailableError(f"cannot read processes from Redis: {exc}") from exc
        now = seconds + micros / 1e6
        ages = [(_text(p), max(0.0, now - float(at))) for p, at in procs]
        return sorted((p for p in ages if p[1] < self.config.process_timeout), key=lambda p: p[1])

    def unsent(self) -> dict[str, int]:
        """Series whose latest changes Redis has not confirmed, by metric name.

        For the log line of a process that exits before its last flush went through:
        takes no lock (a flush may hold them while Redis hangs) and does no I/O, so the
        figure is a close estimate, not a guarantee.
        """
        # The backend's own statistics change with every flush: not the application's.
        own = {stat.definition.name for stat in self._stats.all()}
        out: dict[str, int] = {}
        writer = self._writer
        for chunk in [*writer.pending, *self._in_flight]:  # sent, not answered
            if chunk.name not in own and chunk.undo:
                out[chunk.name] = out.get(chunk.name, 0) + len(chunk.undo)
        for name, metric in list(self._metrics.items()):
            if name in own:
                continue
            kind = metric.definition.type
            for child in metric.children():
                entry = writer.shadow.get(child)
                current = shadow_value(kind, child.snapshot())
                if entry is None or entry[1] != current:
                    out[name] = out.get(name, 0) + 1
        return out

    # ------------------------------------------------------------------ background

    def _start_flusher(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pytheus-redis-flusher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # In write-through mode the thread only heartbeats, and retries after failures.
        interval = self.config.flush_interval or self.config.process_timeout / 3
        while not self._wakeup.wait(interval):
            try:
                if self.flush() and self._rediscover is not None:
                    self._rediscover_families()
            except Exception:  # the flusher must outlive any surprise
                logger.exception("pytheus flusher failed; trying again next interval.")

    def _before_fork(self) -> None:
        # The child must not inherit a series lock held by the flusher reading it. Not
        # _flush_lock: a flush holds it across its network call, and fork() (gunicorn
        # replacing a worker) must not wait for a Redis that hangs. The child rebuilds
        # all the flush state below, whatever the parent's flusher was doing.
        self._build_lock.acquire()
        # Nor the lock of redis-py's connection pool, which a flush holds for a moment
        # around each call: the child's first call, resetting the pool, would wait for it
        # for ever. (An RLock, as redis-py makes it, owned by this thread in the child too.)
        lock = getattr(getattr(self.client, "connection_pool", None), "_lock", None)
        if isinstance(lock, _RLOCK):
            lock.acquire()
            self._pool_lock = lock

    def _after_fork(self, child: bool) -> None:
        # Released in the child too: the thread that forked owns it there as well.
        if self._pool_lock is not None:
            self._pool_lock.release()
            self._pool_lock = None
        if not child:
            self._build_lock.release()
            return
        # The parent sends what was pending before the fork; the child starts clean,
        # under a process id of its own, with a flusher thread of its own.
        self._flush_lock = threading.Lock()
        self._defs_lock = threading.Lock()
        self._build_lock = threading.Lock()
        self._new_process()
        self._failing = self._refused = False
        self._in_flight = []  # the parent's
        self._rediscover = None
        writer = self._writer
        writer.reset_process()
        for metric in self._metrics.values():
            d = metric.definition
            # What the parent set in a summed gauge is the parent's: a child that kept
            # it would add it once more per child (gunicorn --preload: once per worker).
            summed = d.multiprocess_mode in ("sum", "livesum")
            for c in metric.children():
                entry = writer.shadow.get(c)
                key = entry[0] if entry else series_key(d.labelnames, c.labelset)
                # Gauges are per process: the child writes its own values afresh.
                value = None if d.type == "gauge" else shadow_value(d.type, c.snapshot())
                if summed and not isinstance(metric, _Stat):
                    c.reset_in_forked_child()  # set() could flush (write-through) here
                writer.shadow[c] = (key, value)
        for stat in self._stats.all():
            stat.value = 0.0
            writer.shadow[stat] = (series_key((), stat.labelset), None)
        self._wakeup = threading.Event()
        self._thread = None
        self._pid = os.getpid()
        if not self._closed:
            self._start_flusher()

    def close(self) -> bool:
        """Flush one last time and tell Redis this process is gone; idempotent.

        Returns whether Redis took that last flush (True if already closed).
        """
        if self._closed:
            return True
        self._closed = True
        self._wakeup.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.config.socket_timeout_total)
        # The last flush also tells Redis this process is gone (in the same round trip:
        # an exiting worker should not wait for two).
        took = self._flush(housekeeping=True, leave=True)
        unconfirmed = sorted({c.name for c in self._writer.unconfirmed})
        if unconfirmed:
            logger.warning(
                "This process exits with writes of %s that Redis applied but no replica "
                "confirmed (wait_replicas=%d): a failover before they replicate loses them.",
                ", ".join(map(repr, unconfirmed)),
                self.config.wait_replicas,
            )
        if self._writer.conflicts:
            logger.warning(
                "This process exits with values of %s that it kept while Redis held another "
                "definition of them (which a live process still holds): they are lost.",
                ", ".join(map(repr, sorted(self._writer.conflicts))),
            )
        # Its sockets would otherwise stay open until the garbage collector found the
        # backend (replaced by load_backend(), say).
        self.config.close_client()
        return took

    # ------------------------------------------------------------------ scraping

    def collect(
        self,
        metrics: Sequence[SeriesSource],
        *,
        names: Collection[str] | None = None,
        include_remote: bool = False,
    ) -> Iterator[MetricFamily]:
        """Flush this process and read the metrics' families; see :meth:`collect_series`.

        Not built from :meth:`collect_series`: a series unchanged since the last scrape
        keeps the samples built then (:meth:`~pytheus.backends.redis_read.Scrape.result_families`).
        """
        scrape = self._read(metrics, names, include_remote)
        # Decoded whole before the first is yielded: a malformed value fails the scrape
        # before any of it is rendered. Read first, then built without the garbage
        # collector's pauses (see pytheus.gcpause): a first scrape builds millions of objects.
        with gc_paused():
            families = list(scrape.result_families())
        yield from families

    def collect_series(
        self,
        metrics: Sequence[SeriesSource],
        *,
        names: Collection[str] | None = None,
        include_remote: bool = False,
    ) -> Iterator[MetricSeries]:
        """Flush this process and read the metrics' series, in as few round trips as the
        sizes allow (one for a small registry; see :mod:`~pytheus.backends.redis_read`)."""
        scrape = self._read(metrics, names, include_remote)
        with gc_paused():
            series = list(scrape.result())
        yield from series

    def _read(
        self,
        metrics: Sequence[SeriesSource],
        names: Collection[str] | None,
        include_remote: bool,
    ) -> Scrape:
        """Flush this process and read the metrics from Redis; decoding is the caller's."""
        with self._defs_lock:
            canonical = dict(self._defs)
        scrape = self._reader.scrape(metrics, canonical, names, include_remote)
        shas = self._shas
        took = False
        with self._flush_lock:
            flush: _Flush | None = None
            try:
                if self._resend_pending(housekeeping=False):
                    flush = self._prepare_flush(housekeeping=False)

                def first(pipe: Any) -> None:
                    if flush is not None:
                        flush.add(pipe)
                    scrape.first_round(pipe, shas["READ_META"])

                start = time.perf_counter()
                replies = self._execute(first)
            except REDIS_ERRORS as exc:
                if flush is not None:
                    self._writer.pending = flush.chunks
                self._record_failure(exc)
                raise BackendUnavailableError(f"cannot read metrics from Redis: {exc}") from exc
            if flush is not None:
                took = self._take_flush(flush, replies[: len(flush)], time.perf_counter() - start)
                replies = replies[len(flush) :]
        if took:
            self._after_success()
        # The other rounds without the flush lock: the flusher (and write-through
        # flushes in the application's threads) need not wait for a long read.
        scrape.take(replies, meta=True)
        try:
            while scrape.unfinished():
                scrape.take(self._execute(scrape.next_round))
        except REDIS_ERRORS as exc:
            raise BackendUnavailableError(f"cannot read metrics from Redis: {exc}") from exc
        return scrape


def _close_at_multiprocessing_exit(backend: MultiProcessRedisBackend) -> None:
    """Close ``backend`` when multiprocessing finalises this process, if it still lives."""
    ref = weakref.ref(backend)

    def close() -> None:
        if (alive := ref()) is not None:
            # Bounded, as at interpreter exit (multiprocessing's exit handler runs
            # before pytheus's own atexit one).
            close_backend(backend=alive)

    # Tied to the backend: dropped, without closing anything, if the backend goes away.
    multiprocessing.util.Finalize(backend, close, exitpriority=0)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _infos(client: Any, section: str) -> list[Mapping[str, Any]]:
    """``INFO section`` of a Redis, or of each primary of a cluster."""
    if isinstance(client, RedisCluster):
        answers = client.info(section, target_nodes=RedisCluster.PRIMARIES)
        return [i for i in answers.values() if isinstance(i, Mapping)]
    info: Mapping[str, Any] = client.info(section)
    return [info]


def _unanswered(reply: Any) -> bool:
    """Whether a reply in a pipeline's results says the call may or may not have run (a
    cluster node that did not answer), as opposed to a refusal by Redis."""
    return isinstance(reply, redis.ConnectionError | redis.TimeoutError | RedisClusterException)


class _Stat:
    """A statistic of the backend itself, flushed like a metric with one series.

    Not a metric (a :class:`~pytheus.definitions.SeriesSource`): it belongs to one
    backend instance, is in no registry, and is only changed under the backend's flush
    lock.
    """

    __slots__ = ("definition", "labelset", "value", "__weakref__")

    def __init__(self, name: str, kind: str, help_text: str, mode: str = "") -> None:
        self.definition = MetricDefinition(name, kind, help_text, multiprocess_mode=mode)
        self.labelset = EMPTY_LABELS
        self.value = 0.0

    def children(self) -> list[_Stat]:
        return [self]

    def snapshot(self) -> Any:
        return (self.value, None) if self.definition.type == "counter" else self.value


class _SelfMetrics:
    """The backend's own health, shared through Redis like any metric."""

    def __init__(self) -> None:
        self.errors = _Stat(
            "pytheus_backend_errors",
            "counter",
            "Failed flushes and scrapes of the metrics backend.",
        )
        self.flush_seconds = _Stat(
            "pytheus_backend_flush_seconds", "counter", "Time spent flushing metrics to Redis."
        )
        self.last_flush = _Stat(
            "pytheus_backend_last_flush_timestamp_seconds",
            "gauge",
            "Unix time of a successful flush of the least recently flushed live process "
            "(sent with every tenth flush).",
            "livemin",
        )
        self.pending = _Stat(
            "pytheus_backend_pending_series",
            "gauge",
            "Series changes the last flush carried; large after an outage.",
            "livesum",
        )

        #: Their metric names: what a flush leaves out when it does not send them.
        self.names = frozenset(s.definition.name for s in self.all())

    def all(self) -> tuple[_Stat, ...]:
        return (self.errors, self.flush_seconds, self.last_flush, self.pending)
