"""Celery task and worker metrics, from Celery's signals: no change to task code.

::

    from pytheus.contrib.celery import instrument

    instrument()  # once per process, e.g. in the module that makes the Celery app

In Django, ``PYTHEUS = {"CELERY": True, ...}`` does it when the app is ready. Use the
Redis backend (:mod:`pytheus.backends.redis`): a Celery worker is several processes
(the consumer and its pool), and the web process that Prometheus scrapes is yet
another; through Redis, any process's scrape shows all of them.

Metrics (``celery`` is the ``namespace`` argument):

=================================== ========= ==========================================
metric                              type      labels
=================================== ========= ==========================================
celery_tasks_published_total        counter   task, queue (where ``delay()`` runs)
celery_tasks_received_total         counter   task, queue (the worker's consumer)
celery_tasks_started_total          counter   task, queue
celery_tasks_succeeded_total        counter   task, queue
celery_tasks_failed_total           counter   task, queue, exception
celery_tasks_retried_total          counter   task, queue
celery_tasks_revoked_total          counter   task, queue, reason
celery_tasks_rejected_total         counter   task, queue, reason
celery_task_runtime_seconds         histogram task, queue
celery_task_queue_wait_seconds      histogram task, queue
celery_tasks_in_progress            gauge     task, queue, worker (livesum)
celery_worker_processes             gauge     worker, role (livesum)
=================================== ========= ==========================================

Label values are bounded: ``task`` is a task name registered with the Celery app (any
other is ``<other>``), ``queue`` one of the app's queues (else ``<other>``; ``<eager>``
for tasks run where they are called, ``task_always_eager``), ``exception`` the class
name of the exception, ``worker`` the worker's node name (``celery@host``), ``role``
``main`` (the process that consumes messages) or ``pool`` (a prefork pool process),
``reason`` ``revoked``, ``terminated`` or ``expired`` for revocations and ``rejected``,
``unknown`` (no such task) or ``invalid`` (a message Celery cannot read) for rejections.
Arguments never appear in labels.

The queue wait is the time from ``delay()`` to the start of the task (from its ETA
for delayed tasks): the publishing process puts its clock's time in a message header
(``pytheus_published``); clocks of different hosts differ by their skew, negative
waits are counted as 0. The gauges are ``livesum``: a worker process that is killed
stops counting within the backend's ``process_timeout``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from pytheus.backends import close_backend
from pytheus.metrics import Counter, Gauge, Histogram
from pytheus.registry import REGISTRY, Registry

__all__ = [
    "EAGER",
    "OTHER",
    "PUBLISHED_HEADER",
    "CeleryMetrics",
    "get_metrics",
    "instrument",
    "uninstrument",
]

logger = logging.getLogger(__name__)

#: The label value of a task name or queue the app does not know.
OTHER = "<other>"
#: The queue label of tasks run eagerly (``task_always_eager``, ``apply()``): no queue.
EAGER = "<eager>"
#: The message header in which the publisher puts the time of publication.
PUBLISHED_HEADER = "pytheus_published"

#: Task run times: 5 ms to 10 minutes.
RUNTIME_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
#: Time in the queue: 1 ms to an hour.
QUEUE_WAIT_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.05,
    0.1,
    0.5,
    1,
    5,
    10,
    30,
    60,
    300,
    900,
    3600,
)

F = TypeVar("F", bound=Callable[..., None])

# How many task names and queues a CeleryMetrics remembers the label value of.
_MEMO_MAX = 10_000


class CeleryMetrics:
    """The metrics :func:`instrument` defines, and the bounded label values."""

    def __init__(
        self,
        app: Any,
        namespace: str,
        registry: Registry | None,
        runtime_buckets: Iterable[float],
        queue_wait_buckets: Iterable[float],
    ) -> None:
        self.app = app
        self.registry = registry
        p = f"{namespace}_" if namespace else ""
        task_queue = ["task", "queue"]

        def counter(name: str, help_text: str, extra: tuple[str, ...] = ()) -> Counter:
            return Counter(f"{p}{name}_total", help_text, [*task_queue, *extra], registry=registry)

        self.published = counter("tasks_published", "Tasks sent to a queue (delay, apply_async).")
        self.received = counter("tasks_received", "Task messages a worker received.")
        self.started = counter("tasks_started", "Tasks that started running.")
        self.succeeded = counter("tasks_succeeded", "Tasks that returned.")
        self.failed = counter(
            "tasks_failed", "Tasks that raised, by exception class.", ("exception",)
        )
        self.retried = counter("tasks_retried", "Tasks that asked to be retried.")
        self.revoked = counter(
            "tasks_revoked", "Tasks revoked: revoked, terminated or expired.", ("reason",)
        )
        self.rejected = counter(
            "tasks_rejected",
            "Task messages rejected: by the task (Reject), unknown task names, invalid messages.",
            ("reason",),
        )
        self.runtime = Histogram(
            f"{p}task_runtime",
            "Time tasks ran, whatever their outcome.",
            task_queue,
            registry=registry,
            buckets=runtime_buckets,
            unit="seconds",
        )
        self.queue_wait = Histogram(
            f"{p}task_queue_wait",
            "Time from publication (or ETA) to the start of a task.",
            task_queue,
            registry=registry,
            buckets=queue_wait_buckets,
            unit="seconds",
        )
        self.in_progress = Gauge(
            f"{p}tasks_in_progress",
            "Tasks running now.",
            [*task_queue, "worker"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.processes = Gauge(
            f"{p}worker_processes",
            "Worker processes alive: main (consumes messages) and pool processes.",
            ["worker", "role"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        # (task id, id of the run's request) -> (start, in-progress series). Not the id
        # alone: a task that retries itself publishes the same id again, and a thread
        # pool can start the retry before the first run's task_postrun.
        self.running: dict[tuple[str, int], tuple[float, Any]] = {}
        # (id of the app, raw value) -> label value, for the label checks above.
        self._names: dict[tuple[int, str], str] = {}
        self._queues: dict[tuple[int, str], str] = {}
        self.lock = threading.Lock()
        self.hostname = ""

    def all(self) -> tuple[Counter | Gauge | Histogram, ...]:
        """Every metric, in definition order."""
        return tuple(v for v in vars(self).values() if isinstance(v, Counter | Gauge | Histogram))

    # ---- bounded label values

    def _app(self, task: Any = None) -> Any:
        if self.app is not None:
            return self.app
        app = getattr(task, "app", None)
        if app is None:
            from celery import current_app

            app = current_app
        return app

    def task_name(self, name: object, task: Any = None) -> str:
        """``name`` if the app registered a task of that name, else ``<other>``."""
        if not isinstance(name, str):
            return OTHER
        app = self._app(task)
        label = self._names.get((id(app), name))
        if label is None:
            try:
                known = name in app.tasks
            except Exception:  # an app that cannot finalize here: no name is known
                known = False
            label = name if known else OTHER
            # Remembered (a signal handler runs per task), within bounds: names that
            # come with messages are not.
            if known or len(self._names) < _MEMO_MAX:
                self._names[id(app), name] = label
        return label

    def queue(self, delivery_info: Mapping[str, Any] | None, task: Any = None) -> str:
        """The queue of a delivery, if the app knows it, else ``<other>``."""
        info = delivery_info or {}
        if info.get("is_eager"):
            return EAGER
        name = info.get("routing_key") or info.get("queue")
        if not isinstance(name, str) or not name:
            return OTHER
        app = self._app(task)
        label = self._queues.get((id(app), name))
        if label is None:
            try:
                known = name in app.amqp.queues or name == app.conf.task_default_queue
            except Exception:
                known = False
            label = name if known else OTHER
            # Not remembered while unknown: a queue may be declared later.
            if known and len(self._queues) < _MEMO_MAX:
                self._queues[id(app), name] = label
        return label

    def owns(self, task: Any) -> bool:
        """Whether events of ``task`` are this instrumentation's (its app, or any)."""
        return self.app is None or getattr(task, "app", self.app) is self.app


_current: CeleryMetrics | None = None
_connected = False
# Left by the main process for its pool processes (they are forked from it).
_hostname = ""
_main_pid = 0


def get_metrics() -> CeleryMetrics | None:
    """The metrics of the last :func:`instrument` call, or None."""
    return _current


def _guarded(func: F) -> F:
    """A signal handler that never breaks the task or the worker it observes."""
    failed = False

    @functools.wraps(func)
    def handler(*args: Any, **kwargs: Any) -> None:
        nonlocal failed
        metrics = _current
        if metrics is None:
            return
        try:
            func(metrics, *args, **kwargs)
        except Exception:
            if not failed:  # once: a handler that fails will fail on every task
                failed = True
                logger.exception("pytheus: the Celery handler %s failed.", func.__name__)

    return handler  # type: ignore[return-value]


def _request_value(request: Any, name: str) -> Any:
    """A field of a task request (a Context, or the consumer's Request), or None."""
    value = getattr(request, name, None)
    if value is None:
        headers = getattr(request, "headers", None)
        if isinstance(headers, Mapping):
            value = headers.get(name)
    return value


def _eta_timestamp(eta: object) -> float | None:
    if isinstance(eta, datetime):
        return eta.timestamp()
    if isinstance(eta, str):
        try:
            return datetime.fromisoformat(eta).timestamp()
        except ValueError:
            return None
    return None


# --------------------------------------------------------------------------- handlers


@_guarded
def _on_before_publish(
    m: CeleryMetrics, sender: object = None, headers: dict[str, Any] | None = None, **_: Any
) -> None:
    # The message carries its time of publication to the worker (for the queue wait).
    if headers is not None:
        headers[PUBLISHED_HEADER] = time.time()


@_guarded
def _on_published(
    m: CeleryMetrics,
    sender: object = None,
    headers: Mapping[str, Any] | None = None,
    routing_key: str | None = None,
    **_: Any,
) -> None:
    # After the broker took it: a publish that fails (broker down) is not counted.
    name = (headers or {}).get("task", sender)
    queue = m.queue({"routing_key": routing_key})
    m.published.labels(task=m.task_name(name), queue=queue).inc()


@_guarded
def _on_received(m: CeleryMetrics, sender: Any = None, request: Any = None, **_: Any) -> None:
    task = getattr(request, "task", None)
    if not m.owns(task):
        return
    queue = m.queue(getattr(request, "delivery_info", None), task)
    m.received.labels(task=m.task_name(getattr(request, "name", None), task), queue=queue).inc()


@_guarded
def _on_prerun(
    m: CeleryMetrics, sender: Any = None, task_id: str | None = None, task: Any = None, **_: Any
) -> None:
    task = task or sender
    if not m.owns(task):
        return
    request = getattr(task, "request", None)
    name = m.task_name(getattr(task, "name", None), task)
    queue = m.queue(getattr(request, "delivery_info", None), task)
    now = time.time()
    m.started.labels(task=name, queue=queue).inc()
    published = _request_value(request, PUBLISHED_HEADER)
    if isinstance(published, int | float):
        eta = _eta_timestamp(_request_value(request, "eta"))
        since = max(published, eta) if eta is not None else published
        m.queue_wait.labels(task=name, queue=queue).observe(max(0.0, now - since))
    worker = getattr(request, "hostname", None) or m.hostname or _hostname or OTHER
    gauge = m.in_progress.labels(task=name, queue=queue, worker=worker)
    gauge.inc()
    if task_id is not None:
        with m.lock:
            m.running[task_id, id(request)] = (time.perf_counter(), gauge)


@_guarded
def _on_postrun(
    m: CeleryMetrics,
    sender: Any = None,
    task_id: str | None = None,
    task: Any = None,
    state: str | None = None,
    **_: Any,
) -> None:
    task = task or sender
    if task_id is None or not m.owns(task):
        return
    with m.lock:
        started = m.running.pop((task_id, id(getattr(task, "request", None))), None)
    if started is None:
        return
    start, gauge = started
    gauge.dec()
    request = getattr(task, "request", None)
    name = m.task_name(getattr(task, "name", None), task)
    queue = m.queue(getattr(request, "delivery_info", None), task)
    m.runtime.labels(task=name, queue=queue).observe(time.perf_counter() - start)
    if state == "REJECTED":
        m.rejected.labels(task=name, queue=queue, reason="rejected").inc()


def _task_labels(m: CeleryMetrics, task: Any, request: Any = None) -> tuple[str, str]:
    request = request if request is not None else getattr(task, "request", None)
    name = m.task_name(getattr(task, "name", None), task)
    return name, m.queue(getattr(request, "delivery_info", None), task)


@_guarded
def _on_success(m: CeleryMetrics, sender: Any = None, **_: Any) -> None:
    if m.owns(sender):
        name, queue = _task_labels(m, sender)
        m.succeeded.labels(task=name, queue=queue).inc()


@_guarded
def _on_failure(
    m: CeleryMetrics, sender: Any = None, exception: BaseException | None = None, **_: Any
) -> None:
    if m.owns(sender):
        name, queue = _task_labels(m, sender)
        kind = type(exception).__name__ if exception is not None else OTHER
        m.failed.labels(task=name, queue=queue, exception=kind).inc()


@_guarded
def _on_retry(m: CeleryMetrics, sender: Any = None, request: Any = None, **_: Any) -> None:
    if m.owns(sender):
        name, queue = _task_labels(m, sender, request)
        m.retried.labels(task=name, queue=queue).inc()


@_guarded
def _on_revoked(
    m: CeleryMetrics,
    sender: Any = None,
    request: Any = None,
    terminated: bool = False,
    expired: bool = False,
    **_: Any,
) -> None:
    if m.owns(sender):
        name, queue = _task_labels(m, sender, request)
        reason = "expired" if expired else "terminated" if terminated else "revoked"
        m.revoked.labels(task=name, queue=queue, reason=reason).inc()


def _message_labels(m: CeleryMetrics, message: Any, name: object) -> tuple[str, str]:
    headers = getattr(message, "headers", None) or {}
    if name is None:
        name = headers.get("task")
    return m.task_name(name), m.queue(getattr(message, "delivery_info", None))


@_guarded
def _on_unknown(
    m: CeleryMetrics, sender: Any = None, message: Any = None, name: object = None, **_: Any
) -> None:
    task, queue = _message_labels(m, message, name)
    m.rejected.labels(task=task, queue=queue, reason="unknown").inc()


@_guarded
def _on_rejected(m: CeleryMetrics, sender: Any = None, message: Any = None, **_: Any) -> None:
    task, queue = _message_labels(m, message, None)
    m.rejected.labels(task=task, queue=queue, reason="invalid").inc()


@_guarded
def _on_worker_init(m: CeleryMetrics, sender: Any = None, **_: Any) -> None:
    global _hostname, _main_pid
    _hostname = m.hostname = str(getattr(sender, "hostname", "") or "")
    _main_pid = os.getpid()


@_guarded
def _on_worker_ready(m: CeleryMetrics, sender: Any = None, **_: Any) -> None:
    worker = str(getattr(sender, "hostname", "") or m.hostname or _hostname or OTHER)
    m.processes.labels(worker=worker, role="main").set(1)


@_guarded
def _on_worker_shutdown(m: CeleryMetrics, sender: Any = None, **_: Any) -> None:
    worker = str(getattr(sender, "hostname", "") or m.hostname or _hostname or OTHER)
    m.processes.labels(worker=worker, role="main").set(0)


@_guarded
def _on_process_init(m: CeleryMetrics, sender: Any = None, **_: Any) -> None:
    worker = str(sender or m.hostname or _hostname or OTHER)
    m.hostname = worker
    # The solo pool sends it too, in the main process: one process, counted once.
    if os.getpid() != _main_pid:
        m.processes.labels(worker=worker, role="pool").set(1)


@_guarded
def _on_process_shutdown(m: CeleryMetrics, sender: Any = None, **_: Any) -> None:
    if os.getpid() == _main_pid:
        return  # the solo pool: the main process's atexit sends its last metrics
    # A pool process leaves through os._exit(), which skips atexit: this is its last
    # chance to send what it recorded (max_tasks_per_child, autoscaling, shutdown).
    worker = str(sender or m.hostname or _hostname or OTHER)
    m.processes.labels(worker=worker, role="pool").set(0)
    close_backend()


# Signal name -> receiver; the signals are looked up when connecting, so that importing
# this module does not import Celery (some 0.4 s: a Django site that never turns CELERY on
# must not pay it at start-up).
_HANDLERS: tuple[tuple[str, Callable[..., None]], ...] = (
    ("before_task_publish", _on_before_publish),
    ("after_task_publish", _on_published),
    ("task_received", _on_received),
    ("task_prerun", _on_prerun),
    ("task_postrun", _on_postrun),
    ("task_success", _on_success),
    ("task_failure", _on_failure),
    ("task_retry", _on_retry),
    ("task_revoked", _on_revoked),
    ("task_unknown", _on_unknown),
    ("task_rejected", _on_rejected),
    ("worker_init", _on_worker_init),
    ("worker_ready", _on_worker_ready),
    ("worker_shutdown", _on_worker_shutdown),
    ("worker_process_init", _on_process_init),
    ("worker_process_shutdown", _on_process_shutdown),
)


def _signals() -> Any:
    try:
        from celery import signals
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError(
            "pytheus.contrib.celery needs Celery: pip install celery (the 'celery' extra "
            "of this package)."
        ) from exc
    return signals


def instrument(
    app: Any = None,
    *,
    namespace: str = "celery",
    registry: Registry | None = REGISTRY,
    runtime_buckets: Iterable[float] = RUNTIME_BUCKETS,
    queue_wait_buckets: Iterable[float] = QUEUE_WAIT_BUCKETS,
) -> CeleryMetrics:
    """Define the Celery metrics in ``registry`` and connect Celery's signals.

    ``app``: count only the tasks of this Celery app (default: every app in the
    process). Call it in every process that publishes or runs tasks, before the worker
    starts (the module that makes the app is a good place). Calling it again replaces
    the metrics (their names are freed in the old registry); :func:`uninstrument`
    disconnects.
    """
    global _current, _connected
    signals = _signals()  # before anything is defined: without Celery, nothing changes
    # Defined unregistered, then registered together: a name already taken leaves
    # neither half of the set behind.
    new = CeleryMetrics(app, namespace, None, runtime_buckets, queue_wait_buckets)
    old = _current
    if old is not None and old.registry is not None:
        _unregister(old)
    if registry is not None:
        try:
            for metric in new.all():
                registry.register(metric)  # attaches it to the backend, too
        except BaseException:
            _unregister(new, registry)
            if old is not None and old.registry is not None:
                for metric in old.all():
                    old.registry.register(metric)
            raise
    new.registry = registry
    new.hostname = old.hostname if old is not None else _hostname
    _current = new
    if not _connected:
        for signal_name, handler in _HANDLERS:
            getattr(signals, signal_name).connect(
                handler, weak=False, dispatch_uid=f"pytheus.{handler.__name__}"
            )
        _connected = True
    return new


def _unregister(metrics: CeleryMetrics, registry: Registry | None = None) -> None:
    target = registry if registry is not None else metrics.registry
    if target is None:
        return
    for metric in metrics.all():
        # KeyError: not registered (yet), or the registry was emptied meanwhile.
        with contextlib.suppress(KeyError):
            target.unregister(metric)


def uninstrument() -> None:
    """Disconnect the signals and unregister the metrics."""
    global _current, _connected
    if _connected:
        signals = _signals()
        for signal_name, handler in _HANDLERS:
            getattr(signals, signal_name).disconnect(
                handler, dispatch_uid=f"pytheus.{handler.__name__}"
            )
    _connected = False
    old, _current = _current, None
    if old is not None:
        _unregister(old)
