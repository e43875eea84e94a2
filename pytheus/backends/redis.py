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
  process's current value for gauges) and applies them in one round trip, with a Lua
  script that makes the flush atomic and idempotent (a process id and a sequence number
  per flush, so a flush retried after a lost reply is applied once).
* A scrape flushes this process's pending changes and reads every metric, including
  those only other processes defined, in the same round trip.
* When Redis is unreachable, nothing raises into the application: changes stay pending
  in the metric objects (memory bounded by the number of series) and are applied when
  Redis is back. Scrapes raise :class:`~pytheus.exceptions.BackendUnavailableError`.
* Processes heartbeat with every flush. A process silent for ``process_timeout`` seconds
  is reaped: its gauge values are folded according to each gauge's
  ``multiprocess_mode`` and its keys deleted, so dead workers leave nothing behind but
  their counts.

The key layout is described in :mod:`pytheus.backends.redis_scripts`.
"""

from __future__ import annotations

import codecs
import difflib
import json
import logging
import math
import multiprocessing.util
import os
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pytheus.backends import redis_scripts
from pytheus.backends.redis_options import map_pytheus_options
from pytheus.definitions import (
    HistogramState,
    MetricDefinition,
    MetricSeries,
    SeriesSource,
    SummaryState,
)
from pytheus.exceptions import (
    BackendUnavailableError,
    ConfigurationError,
    MetricDefinitionError,
)
from pytheus.families import build_family
from pytheus.naming import series_names
from pytheus.samples import EMPTY_LABELS, LabelSet, MetricFamily

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "The Redis backend needs the redis package: pip install redis hiredis (the 'redis' "
        "extra of this package)"
    ) from exc

if TYPE_CHECKING:
    from redis.commands.core import Script

__all__ = ["MultiProcessRedisBackend"]

# socket.getaddrinfo() imports the idna codec on first use. Imported here, not by the
# flusher's first connection: a fork() in the middle of that import (gunicorn --preload
# forking workers just as the master's flusher first connects) leaves the module's
# import lock held in the child for ever, and the child can never connect to Redis
# ("LookupError: unknown encoding: idna" on every flush and scrape).
codecs.lookup("idna")

logger = logging.getLogger(__name__)

_CONFIG_KEYS = frozenset(
    {
        "url",
        "host",
        "port",
        "db",
        "username",
        "password",
        "prefix",
        "flush_interval",
        "process_timeout",
        "series_ttl",
        "socket_timeout",
        "socket_connect_timeout",
        "connection_options",
        "client",
        "connection_pool",
    }
)

# Modes whose value is per process in Redis; "all" modes add a label with the process.
_PROCESS_LABEL = "pid"
# How long a reaped process's last sequence number is kept, so that a flush it retries
# after a lost reply is still recognised as a duplicate.
_SEQ_RETENTION = 24 * 3600.0
_RLOCK = type(threading.RLock())
# Label sets decoded from series keys are kept between scrapes, up to this many.
_LABELSET_CACHE_MAX = 200_000


def _canonical_definition(d: MetricDefinition) -> str:
    """The definition as stored in Redis: JSON with sorted keys, label names sorted."""
    return json.dumps(
        {
            "type": d.type,
            "labelnames": sorted(d.labelnames),
            "unit": d.unit,
            "buckets": [repr(b) for b in d.buckets],
            "states": list(d.states),
            "multiprocess_mode": d.multiprocess_mode,
        },
        sort_keys=True,
        separators=(",", ":"),
    )


def _definition_from_json(name: str, stored: str, help_text: str) -> MetricDefinition:
    raw = json.loads(stored)
    return MetricDefinition(
        name=name,
        type=raw["type"],
        help=help_text,
        labelnames=tuple(raw["labelnames"]),
        unit=raw["unit"],
        buckets=tuple(float(b) for b in raw["buckets"]),
        states=tuple(raw["states"]),
        multiprocess_mode=raw["multiprocess_mode"],
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class _Config:
    """The validated backend configuration."""

    def __init__(self, config: Mapping[str, Any] | None) -> None:
        config = map_pytheus_options(config or {}, _CONFIG_KEYS)
        for key in config:
            if key not in _CONFIG_KEYS:
                close = difflib.get_close_matches(key, _CONFIG_KEYS, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ConfigurationError(
                    f"Unknown MultiProcessRedisBackend option {key!r}.{hint} "
                    f"Valid options: {sorted(_CONFIG_KEYS)}."
                )
        self.prefix = self._str(config, "prefix", "pytheus")
        if not self.prefix or any(c in self.prefix for c in " \0\n"):
            raise ConfigurationError(f"prefix {self.prefix!r} must be a non-empty word.")
        self.flush_interval = self._number(config, "flush_interval", 1.0)
        self.process_timeout = self._number(
            config, "process_timeout", max(10.0, 5 * self.flush_interval)
        )
        if self.process_timeout <= self.flush_interval:
            raise ConfigurationError(
                f"process_timeout ({self.process_timeout}) must be longer than "
                f"flush_interval ({self.flush_interval}), or live processes would be reaped."
            )
        self.series_ttl = self._number(config, "series_ttl", 0.0)
        self.client = self._make_client(config)
        # A client or pool handed in belongs to the caller (a django-redis cache's pool is
        # shared): only one made here is closed with the backend.
        self.owns_client = config.get("client") is None and config.get("connection_pool") is None
        timeout = self.client.connection_pool.connection_kwargs.get("socket_timeout")
        # How long a flush can take at worst: what close() waits for the flusher.
        self.socket_timeout_total = float(timeout or 5.0) + 1.0

    @staticmethod
    def _str(config: Mapping[str, Any], key: str, default: str) -> str:
        value = config.get(key, default)
        if not isinstance(value, str):
            raise ConfigurationError(f"{key} must be a str, got {value!r}.")
        return value

    @staticmethod
    def _number(config: Mapping[str, Any], key: str, default: float) -> float:
        value = config.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigurationError(f"{key} must be a number of seconds >= 0, got {value!r}.")
        return float(value)

    def _make_client(self, config: Mapping[str, Any]) -> redis.Redis:
        given = [k for k in ("client", "connection_pool", "url") if config.get(k) is not None]
        if len(given) > 1:
            raise ConfigurationError(
                f"Give only one of client, connection_pool and url (got {given})."
            )
        client = config.get("client")
        if client is not None:
            if not isinstance(client, redis.Redis):
                raise ConfigurationError(
                    f"client must be a redis.Redis instance, got {type(client).__name__}."
                )
            return client
        options: dict[str, Any] = dict(config.get("connection_options") or {})
        # Fail fast: a scrape should answer 503 quickly rather than retry for seconds,
        # and the flusher retries by itself on its next interval. One retry covers the
        # stale pooled connection left by a Redis restart.
        options.setdefault("retry", Retry(NoBackoff(), 1))
        options.setdefault("decode_responses", True)
        options.setdefault("socket_timeout", self._number(config, "socket_timeout", 5.0))
        options.setdefault(
            "socket_connect_timeout", self._number(config, "socket_connect_timeout", 2.0)
        )
        pool = config.get("connection_pool")
        if pool is not None:
            if not isinstance(pool, redis.ConnectionPool):
                raise ConfigurationError(
                    f"connection_pool must be a redis.ConnectionPool, got {type(pool).__name__}."
                )
            return redis.Redis(connection_pool=pool)
        url = config.get("url")
        if url is not None:
            if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
                raise ConfigurationError(
                    f"url {url!r} must start with redis://, rediss:// or unix://."
                )
            try:
                return redis.Redis.from_url(url, **options)
            except ValueError as exc:
                raise ConfigurationError(f"Invalid Redis url {url!r}: {exc}") from exc
        for key in ("username", "password"):
            if config.get(key) is not None:
                options[key] = self._str(config, key, "")
        port = config.get("port", 6379)
        db = config.get("db", 0)
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise ConfigurationError(f"port must be an int from 1 to 65535, got {port!r}.")
        if not isinstance(db, int) or isinstance(db, bool) or db < 0:
            raise ConfigurationError(f"db must be an int >= 0, got {db!r}.")
        return redis.Redis(host=self._str(config, "host", "127.0.0.1"), port=port, db=db, **options)


class _Payload:
    """One flush: the JSON for the Lua script, its sequence number and its size."""

    __slots__ = ("seq", "json", "series")

    def __init__(self, seq: int, body: dict[str, Any], series: int) -> None:
        self.seq = seq
        self.json = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        self.series = series


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


def _shadow_value(kind: str, snap: Any) -> Any:
    """The part of a snapshot that the next flush's deltas are computed from."""
    if kind == "counter":
        return snap[0]
    if kind == "histogram":
        return (snap.counts, snap.sum)
    if kind == "summary":
        return (snap.observations, snap.sum)
    return snap


class MultiProcessRedisBackend:
    """Aggregates metrics of many processes in Redis; see the module docstring.

    Options (all optional): ``url`` (``redis://``, ``rediss://``, ``unix://``), or
    ``host`` (127.0.0.1), ``port`` (6379), ``db``, ``username``, ``password``; or a ready
    ``client`` (``redis.Redis``) or ``connection_pool``. ``prefix`` namespaces the keys
    ("pytheus"), ``flush_interval`` is seconds between flushes (1.0; 0 writes every
    change through before the call returns: a round trip per operation, for scripts
    and tests rather than web workers), ``process_timeout`` is how long a silent
    process counts as alive, ``series_ttl`` (off by default) deletes a series that no
    process has written for that many seconds (its counters restart from zero if it is
    written again, which Prometheus reads as a counter reset; a gauge loses only what
    dead processes left, since a live process's value is current), ``socket_timeout`` and
    ``socket_connect_timeout`` bound every call, ``connection_options`` go to
    ``redis.Redis``.
    """

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        cfg = _Config(config)
        self.config = cfg
        self.client: redis.Redis = cfg.client
        self._flush_script: Script = self.client.register_script(redis_scripts.FLUSH)
        self._read_script: Script = self.client.register_script(redis_scripts.READ)

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
        self._unsent_defs: set[str] = set()
        # Per series (child): its key in Redis and the values already flushed.
        self._shadow: weakref.WeakKeyDictionary[Any, tuple[str, Any]] = weakref.WeakKeyDictionary()
        # Series to write at the next flush even if unchanged: see _write_all_again.
        self._announce: weakref.WeakSet[Any] = weakref.WeakSet()
        self._pending: _Payload | None = None
        self._conflicts: dict[str, str] = {}  # name -> the differing definition in Redis
        self._stored_defs: dict[str, str] = {}  # name -> definition, as the last scrape read
        # Per metric (name and label names): series key -> its decoded label set.
        self._labelsets: dict[tuple[str, tuple[str, ...]], dict[str, LabelSet]] = {}
        # Set while this thread reads series for a flush, so that the write-through
        # locks released by those reads do not flush again.
        self._flushing = threading.local()
        self._failing = False
        self._closed = False
        self._last_success = 0.0
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
        kwargs = self.client.connection_pool.connection_kwargs
        where = kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}"
        return f"<MultiProcessRedisBackend {where} prefix={self.config.prefix!r}>"

    # ------------------------------------------------------------------ definitions

    def register_metric(self, metric: SeriesSource) -> None:
        """Check that the metric can be stored and remember it; no network I/O."""
        d = metric.definition
        if d.quantiles:
            raise MetricDefinitionError(
                f"Summary {d.name!r} asks for quantiles, which cannot be aggregated across "
                "processes: MultiProcessRedisBackend keeps only _sum and _count. Drop "
                "quantiles=, or use a Histogram and histogram_quantile() in PromQL."
            )
        if d.multiprocess_mode in ("all", "liveall") and _PROCESS_LABEL in d.labelnames:
            raise MetricDefinitionError(
                f"Gauge {d.name!r} with multiprocess_mode={d.multiprocess_mode!r} gets a "
                f"{_PROCESS_LABEL!r} label per process, so it cannot have a label of that "
                "name itself."
            )
        canonical = _canonical_definition(d)
        if self.config.flush_interval <= 0:
            metric.use_lock_factory(self._write_through_lock)
        with self._defs_lock:
            stored = self._conflicts.get(d.name) or self._stored_defs.get(d.name)
            if stored is not None and stored != canonical:
                raise MetricDefinitionError(
                    f"Metric {d.name!r} is defined in Redis (by another process) as "
                    f"{stored}, but here as {canonical}. Processes that share a prefix must "
                    "define each metric the same way."
                )
            self._remember(metric)

    def _remember(self, metric: Any) -> None:
        name = metric.definition.name
        self._metrics[name] = metric
        self._defs[name] = _canonical_definition(metric.definition)
        self._unsent_defs.add(name)

    # ------------------------------------------------------------------ flushing

    def _write_through_lock(self) -> _WriteThroughLock:
        return _WriteThroughLock(self)

    def _write_through(self) -> None:
        """Flush after a change (write-through mode), unless this is a flush's own read.

        While Redis is failing, changes wait for the background thread instead: the
        application must not wait for a timeout on every operation.
        """
        if self._closed or self._failing or getattr(self._flushing, "active", False):
            return
        # In a child, before this backend's after-fork hook has run (another hook reading
        # series, or this one): its flush state is still the parent's, so wait for it.
        if self._pid != os.getpid():
            return
        self.flush()

    def _new_process(self) -> None:
        self._process = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._seq = 0
        # When the last successful flush started (perf_counter): see _handle_flush_reply.
        self._last_ok_start = time.perf_counter()
        # Whether Redis applied a flush of this process: only then can it lose them.
        self._known = False

    @staticmethod
    def _series_key(metric: Any, labelset: LabelSet) -> str:
        names = metric.definition.labelnames
        values = labelset.values_tuple
        order = sorted(range(len(names)), key=names.__getitem__)
        return json.dumps([values[i] for i in order], ensure_ascii=False, separators=(",", ":"))

    def _build_payload(self) -> _Payload | None:
        """Collect what changed since the last flush; the caller holds _flush_lock."""
        counts: list[list[Any]] = []  # added with HINCRBYFLOAT
        gauges: list[list[Any]] = []  # this process's value
        sets: list[list[Any]] = []  # replaced (info, state sets)
        changed: set[str] = set()
        shadow = self._shadow
        announced, self._announce = self._announce, weakref.WeakSet()
        with self._defs_lock:
            metrics = list(self._metrics.items())
        for name, metric in metrics:
            kind = metric.definition.type
            before = len(counts) + len(gauges) + len(sets)
            for child in metric.children():
                entry = shadow.get(child)
                if entry is None:
                    key, previous = self._series_key(metric, child.labelset), None
                else:
                    key, previous = entry
                current = _shadow_value(kind, child.snapshot())
                announce = bool(announced) and child in announced
                if current == previous and not announce:
                    continue
                # A series seen for the first time is written even at zero, so that it
                # shows in scrapes as soon as it exists (as it would in one process).
                new = previous is None or announce
                if kind == "counter":
                    _add_delta(counts, name, key, current - (previous or 0.0), new)
                elif kind == "histogram":
                    old_counts, old_sum = previous or ((0.0,) * len(current[0]), 0.0)
                    for i, (now, old) in enumerate(zip(current[0], old_counts, strict=True)):
                        _add_delta(counts, name, f"{key}\0{i}", now - old, new)
                    _add_delta(counts, name, f"{key}\0s", current[1] - old_sum, new)
                elif kind == "summary":
                    old_count, old_sum = previous or (0.0, 0.0)
                    _add_delta(counts, name, f"{key}\0c", current[0] - old_count, new)
                    _add_delta(counts, name, f"{key}\0s", current[1] - old_sum, new)
                elif kind == "gauge":
                    gauges.append([name, key, repr(current)])
                elif kind == "info":
                    sets.append([name, key, json.dumps(current, sort_keys=True)])
                else:  # stateset
                    sets.append([name, key, current])
                shadow[child] = (key, current)
            if len(counts) + len(gauges) + len(sets) > before:
                changed.add(name)
        size = len(counts) + len(gauges) + len(sets)
        with self._defs_lock:
            send_defs = changed | self._unsent_defs
            if not (size or send_defs):
                return None
            self._unsent_defs.clear()
            body = {
                "d": {n: self._defs[n] for n in send_defs},
                "h": {n: self._metrics[n].definition.help for n in send_defs},
                "c": counts,
                "g": gauges,
                "s": sets,
            }
        self._seq += 1
        return _Payload(self._seq, body, size)

    def _prepare_flush(self, exiting: bool = False) -> list[Any]:
        """Pick what to send and return the script's arguments; holds _flush_lock.

        A payload that was sent without a reply is sent again as it was, under the same
        sequence number, so Redis applies it once whatever happened to the reply.
        """
        # Written only by a flush that succeeds, so "now" is the time of that flush.
        self._stats.last_flush.value = time.time()
        if self._pending is None or not self._pending.series:
            self._flushing.active = True
            try:
                with self._build_lock:
                    self._pending = self._build_payload()
            finally:
                self._flushing.active = False
        if self._pending is None:  # nothing changed: a heartbeat
            self._seq += 1
            self._pending = _Payload(self._seq, {"d": {}, "h": {}, "c": [], "g": [], "s": []}, 0)
        self._stats.pending.value = float(self._pending.series)
        return [
            self.config.prefix,
            self._process,
            self._pending.seq,
            self.config.process_timeout,
            _SEQ_RETENTION,
            "1" if exiting else "0",
            self.config.series_ttl,
            self._pending.json,
        ]

    def _handle_flush_reply(self, reply: Sequence[Any], duration: float) -> None:
        _applied, reaped, conflicts, lost = reply
        self._pending = None
        now = time.perf_counter()
        # Silent for process_timeout or more (an outage, a stall): this process may have
        # been reaped even if the reply saying so was lost (a flush that Redis ran after
        # the client gave up on it), and the reply to its resend says nothing of it.
        silent = now - self._last_ok_start >= self.config.process_timeout
        self._last_ok_start = now - duration
        if lost and self._known:  # not when only failed heartbeats came before
            self._write_all_again()
        elif reaped or silent:
            # Our gauge values were folded away while we were silent: write them again.
            self._forget_gauges()
        for i in range(0, len(conflicts), 2):
            name, stored = _text(conflicts[i]), _text(conflicts[i + 1])
            with self._defs_lock:
                known = name in self._conflicts
                self._conflicts[name] = stored
            if not known:
                logger.error(
                    "Metric %r is defined in Redis as %s but in this process as %s; this "
                    "process's values of it are not written. Define it the same way "
                    "everywhere, or give this service its own prefix.",
                    name,
                    stored,
                    self._defs.get(name),
                )
        self._known = True
        if self._failing:
            self._failing = False
            logger.warning("pytheus reaches Redis again; pending metrics were sent.")
        self._last_success = time.time()
        self._stats.flush_seconds.value += duration

    def _record_failure(self, exc: Exception) -> None:
        self._stats.errors.value += 1.0
        if not self._failing:
            self._failing = True
            logger.error(
                "pytheus cannot reach Redis (%s); metrics are kept in this process and "
                "sent when it is back.",
                exc,
            )

    def _write_all_again(self) -> None:
        """Redis lost what this process wrote: send every series and definition again.

        Without it, what does not change (a gauge set at start-up, an Info, a rarely
        used counter) would be missing from every scrape until it did.
        """
        logger.warning(
            "Redis no longer holds this process's metrics (restarted without persistence, "
            "flushed or failed over?); writing them again: gauges, info and state sets as "
            "they are, counters from what was counted since the last flush (a reset)."
        )
        with self._defs_lock:
            metrics = list(self._metrics.values())
            self._unsent_defs.update(self._defs)
        for metric in metrics:
            resend = metric.definition.type in ("gauge", "info", "stateset")
            for child in metric.children():
                entry = self._shadow.get(child)
                if entry is None:
                    continue
                if resend:
                    self._shadow[child] = (entry[0], None)
                else:  # a delta of zero, written as for a new series: it shows again
                    self._announce.add(child)

    def _forget_gauges(self) -> None:
        with self._defs_lock:
            metrics = list(self._metrics.values())
        for metric in metrics:
            if metric.definition.type == "gauge":
                for child in metric.children():
                    entry = self._shadow.get(child)
                    if entry is not None:
                        self._shadow[child] = (entry[0], None)

    def flush(self, *, exiting: bool = False) -> bool:
        """Send this process's changes now; return whether Redis took them.

        Never raises on a Redis failure: the changes stay pending for the next flush.
        """
        with self._flush_lock:
            try:
                self._resend_pending()
                start = time.perf_counter()
                args = self._prepare_flush(exiting)
                reply = self._flush_script(keys=[], args=args)
            except redis.RedisError as exc:
                self._record_failure(exc)
                return False
            self._handle_flush_reply(reply, time.perf_counter() - start)
            return True

    def _resend_pending(self) -> None:
        """Send again, as it was, a payload whose reply was lost; holds _flush_lock.

        Done before a flush, which then carries what changed since: a flush that only
        resent it would leave those changes behind, for good at exit.
        """
        if self._pending is not None and self._pending.series:
            start = time.perf_counter()
            reply = self._flush_script(keys=[], args=self._prepare_flush())
            self._handle_flush_reply(reply, time.perf_counter() - start)

    def status(self) -> dict[str, Any]:
        """Health figures for dashboards: no secrets, no network I/O."""
        # Without _flush_lock, which a flush holds across its network call: a health
        # page must answer at once while Redis hangs. Each field is read once.
        pending = self._pending
        return {
            "backend": type(self).__name__,
            "redis": repr(self),
            "healthy": not self._failing,
            "last_flush": self._last_success or None,
            "pending_series": pending.series if pending else 0,
            "errors": self._stats.errors.value,
            "process": self._process,
        }

    # ------------------------------------------------------------------ background

    def _start_flusher(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pytheus-redis-flusher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # In write-through mode the thread only heartbeats, and retries after failures.
        interval = self.config.flush_interval or self.config.process_timeout / 3
        while not self._wakeup.wait(interval):
            try:
                self.flush()
            except Exception:  # the flusher must outlive any surprise
                logger.exception("pytheus flusher failed; trying again next interval.")

    def _before_fork(self) -> None:
        # The child must not inherit a series lock held by the flusher reading it. Not
        # _flush_lock: a flush holds it across its network call, and fork() (gunicorn
        # replacing a worker) must not wait for a Redis that hangs. The child rebuilds
        # all the flush state below, whatever the parent's flusher was doing.
        self._build_lock.acquire()
        # Nor the lock of redis-py's connection pool, which a flush (or an application
        # sharing the pool) holds for a moment around each call: the child's first
        # call, resetting the pool, would wait for it for ever.
        # (An RLock, as redis-py makes it: re-entrant for backends sharing a pool, and
        # owned by this thread in the child too.)
        lock = getattr(self.client.connection_pool, "_lock", None)
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
        self._pending = None
        self._announce = weakref.WeakSet()
        self._failing = False
        for metric in self._metrics.values():
            kind = metric.definition.type
            # What the parent set in a summed gauge is the parent's: a child that kept
            # it would add it once more per child (gunicorn --preload: once per worker).
            summed = metric.definition.multiprocess_mode in ("sum", "livesum")
            for c in metric.children():
                entry = self._shadow.get(c)
                key = entry[0] if entry else self._series_key(metric, c.labelset)
                # Gauges are per process: the child writes its own values afresh.
                value = None if kind == "gauge" else _shadow_value(kind, c.snapshot())
                if summed and not isinstance(metric, _Stat):
                    c.reset_in_forked_child()  # set() could flush (write-through) here
                self._shadow[c] = (key, value)
        for stat in self._stats.all():
            stat.value = 0.0
            self._shadow[stat] = (self._series_key(stat, stat.labelset), None)
        self._wakeup = threading.Event()
        self._thread = None
        self._pid = os.getpid()
        if not self._closed:
            self._start_flusher()

    def close(self) -> None:
        """Flush one last time and tell Redis this process is gone; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._wakeup.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.config.socket_timeout_total)
        self.flush(exiting=True)
        if self.config.owns_client:
            # Its sockets would otherwise stay open until the garbage collector found
            # the backend (replaced by load_backend(), say). A later call reconnects.
            self.client.close()

    # ------------------------------------------------------------------ scraping

    def collect(
        self,
        metrics: Sequence[SeriesSource],
        *,
        names: Collection[str] | None = None,
        include_remote: bool = False,
    ) -> Iterator[MetricFamily]:
        """Flush this process and read every metric, in one round trip."""
        for series in self.collect_series(metrics, names=names, include_remote=include_remote):
            yield build_family(series)

    def collect_series(
        self,
        metrics: Sequence[SeriesSource],
        *,
        names: Collection[str] | None = None,
        include_remote: bool = False,
    ) -> Iterator[MetricSeries]:
        """Flush this process and read every metric's series, in one round trip."""
        with self._flush_lock:
            try:
                self._resend_pending()
                start = time.perf_counter()
                flush_reply, read_reply = self._flush_and_read(self._prepare_flush())
            except redis.RedisError as exc:
                self._record_failure(exc)
                raise BackendUnavailableError(f"cannot read metrics from Redis: {exc}") from exc
            self._handle_flush_reply(flush_reply, time.perf_counter() - start)
            families = list(self._families(read_reply, metrics, names, include_remote))
        yield from families

    def _flush_and_read(self, flush_args: list[Any]) -> list[Any]:
        """Run the FLUSH and READ scripts in one round trip; return both replies.

        Not with redis-py's pipelined Script objects: they ask Redis whether the scripts
        exist before every pipeline, a second round trip per scrape. The scripts are
        loaded only when Redis answers NOSCRIPT (after a restart), then the pipeline is
        sent again, which is safe: a flush that did run is known by its sequence number.
        """
        read_args: list[Any] = [self.config.prefix, self.config.process_timeout]

        def execute() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            pipe.evalsha(self._flush_script.sha, 0, *flush_args)
            pipe.evalsha(self._read_script.sha, 0, *read_args)
            return pipe.execute()

        try:
            return execute()
        except redis.exceptions.NoScriptError:
            self.client.script_load(redis_scripts.FLUSH)
            self.client.script_load(redis_scripts.READ)
            return execute()

    def _families(
        self,
        reply: Sequence[Any],
        metrics: Sequence[SeriesSource],
        names: Collection[str] | None,
        include_remote: bool,
    ) -> Iterator[MetricSeries]:
        raw_defs, live, raw_help = reply[1], {_text(p) for p in reply[2]}, reply[3]
        helps = {_text(raw_help[i]): _text(raw_help[i + 1]) for i in range(0, len(raw_help), 2)}
        wanted = set(names) if names is not None else None
        local = {m.definition.name: m for m in metrics}
        if sum(map(len, self._labelsets.values())) > _LABELSET_CACHE_MAX:
            self._labelsets.clear()
        # Remembered so that a later definition that differs fails at definition.
        self._stored_defs = {
            _text(raw_defs[i]): _text(raw_defs[i + 1]) for i in range(0, len(raw_defs), 2)
        }
        for i in range(0, len(raw_defs), 2):
            name, stored = _text(raw_defs[i]), _text(raw_defs[i + 1])
            metric = local.pop(name, None)
            if metric is not None and _canonical_definition(metric.definition) == stored:
                definition = metric.definition
            else:
                # Defined only elsewhere, or differently elsewhere: what Redis holds
                # was written under the stored definition, so read it with that one.
                if metric is None and not include_remote:
                    continue
                definition = _definition_from_json(name, stored, helps.get(name, ""))
                if wanted is not None and wanted.isdisjoint(series_names(name, definition.type)):
                    continue
            values = reply[4 + i // 2]
            yield MetricSeries(definition, self._series(definition, values, live))
        for metric in local.values():  # defined here, not yet in Redis
            yield MetricSeries(metric.definition, [])

    @staticmethod
    def _decode_labelsets(d: MetricDefinition, keys: list[str], into: dict[str, LabelSet]) -> None:
        """Decode series keys into ``into``'s label sets, all keys in one JSON parse.

        A process's first scrape decodes every series; parsing each key on its own
        took more than twice as long as all the rest of that scrape.
        """
        names = d.labelnames
        by_sorted_name = sorted(names)
        in_order = by_sorted_name == list(names)
        for key, values in zip(keys, json.loads(f"[{','.join(keys)}]"), strict=True):
            if in_order and len(values) == len(names):
                labels = tuple(map(str, values))
            else:
                by_name = dict(zip(by_sorted_name, values, strict=False))
                labels = tuple(str(by_name.get(n, "")) for n in names)
            into[key] = LabelSet(names, labels)

    def _series(
        self, d: MetricDefinition, raw: Sequence[Any], live: set[str]
    ) -> list[tuple[LabelSet, Any]]:
        if raw and not isinstance(raw[0], str):  # a client without decode_responses
            raw = [_text(x) for x in raw]
        # Keyed by the label names too: a metric defined again with other labels must
        # not get the label sets decoded for the old ones.
        labelsets = self._labelsets.setdefault((d.name, d.labelnames), {})
        kind = d.type
        if kind == "counter":
            # The most common type, kept lean (a scrape runs this once per series):
            # one field per series, named by the series key alone.
            keys = raw[0::2]
            missing = [key for key in keys if key not in labelsets]
            if missing:
                self._decode_labelsets(d, missing, labelsets)
            return [
                (labelsets[key], (float(value), None))
                for key, value in zip(keys, raw[1::2], strict=True)
            ]
        fields: dict[str, dict[str, str]] = {}
        for field, value in zip(raw[0::2], raw[1::2], strict=True):
            key, _, rest = field.partition("\0")
            parts = fields.get(key)
            if parts is None:
                parts = fields[key] = {}
            parts[rest] = value
        missing = [key for key in fields if key not in labelsets]
        if missing:
            self._decode_labelsets(d, missing, labelsets)
        out: list[tuple[LabelSet, Any]] = []
        for key, parts in fields.items():
            labels = labelsets[key]
            if kind == "histogram":
                counts = tuple(float(parts.get(str(i), 0.0)) for i in range(len(d.buckets)))
                out.append((labels, HistogramState(counts, float(parts.get("s", 0.0)))))
            elif kind == "summary":
                count, total = float(parts.get("c", 0.0)), float(parts.get("s", 0.0))
                out.append((labels, SummaryState(count, total)))
            elif kind == "info":
                out.append((labels, json.loads(parts.get("", "{}"))))
            elif kind == "stateset":
                out.append((labels, parts.get("", d.states[0] if d.states else "")))
            else:
                out.extend(_aggregate_gauge(d.multiprocess_mode, labels, parts, live))
        return out


def _close_at_multiprocessing_exit(backend: MultiProcessRedisBackend) -> None:
    """Close ``backend`` when multiprocessing finalises this process, if it still lives."""
    ref = weakref.ref(backend)

    def close() -> None:
        if (alive := ref()) is not None:
            alive.close()

    # Tied to the backend: dropped, without closing anything, if the backend goes away.
    multiprocessing.util.Finalize(backend, close, exitpriority=0)


def _add_delta(out: list[list[Any]], name: str, field: str, delta: float, new: bool) -> None:
    # Redis refuses to add infinities or NaN (and would stop the script halfway):
    # such an observation is left out of the sum rather than break every flush.
    if (delta or new) and math.isfinite(delta):
        out.append([name, field, repr(delta)])


def _aggregate_gauge(
    mode: str, labels: LabelSet, parts: Mapping[str, str], live: set[str]
) -> list[tuple[LabelSet, float]]:
    """Combine the per-process values of one gauge series according to ``mode``."""
    values: list[tuple[str, float, float]] = []  # (process, value, set at)
    for rest, raw in parts.items():
        if rest.startswith("p\0"):
            process = rest[2:]
            if mode.startswith("live") and process not in live:
                continue
            set_at = float(parts.get(f"t\0{process}", 0.0))
            values.append((process, float(raw), set_at))
    if mode in ("all", "liveall"):
        return [
            (labels.with_label(_PROCESS_LABEL, process.rsplit(":", 1)[0]), value)
            for process, value, _ in values
        ]
    retired = parts.get("r")
    if retired is not None and not mode.startswith("live"):
        values.append(("", float(retired), float(parts.get("rt", 0.0))))
    if not values:
        return []
    numbers = [v for _, v, _ in values]
    if mode in ("sum", "livesum"):
        return [(labels, sum(numbers))]
    if mode in ("max", "livemax"):
        return [(labels, max(numbers))]
    if mode in ("min", "livemin"):
        return [(labels, min(numbers))]
    return [(labels, max(values, key=lambda v: v[2])[1])]  # mostrecent


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
            "Unix time of the last successful flush of the least recently flushed live process.",
            "livemin",
        )
        self.pending = _Stat(
            "pytheus_backend_pending_series",
            "gauge",
            "Series changes the last flush carried; large after an outage.",
            "livesum",
        )

    def all(self) -> tuple[_Stat, ...]:
        return (self.errors, self.flush_seconds, self.last_flush, self.pending)
