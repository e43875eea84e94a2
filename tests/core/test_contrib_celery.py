"""pytheus.contrib.celery in one process: eager tasks through Celery's own signals, bounded
label values, replacing and disconnecting, a failing handler that never breaks a task.
(Real workers, prefork, threads and solo pools: tests/celery_app.)"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery

from pytheus.contrib import celery as contrib
from pytheus.registry import CollectorRegistry


@pytest.fixture
def app(registry: CollectorRegistry) -> Iterator[Celery]:
    app = Celery("unit", set_as_current=False)
    app.conf.task_always_eager = True
    app.conf.broker_url = "memory://"

    @app.task(name="unit.ok", shared=False)
    def ok(secret: str) -> int:
        return len(secret)

    @app.task(name="unit.fail", shared=False)
    def fail() -> None:
        raise KeyError("x")

    contrib.instrument(app, registry=registry)
    try:
        yield app
    finally:
        contrib.uninstrument()


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_eager_tasks_are_counted(app: Celery, registry: CollectorRegistry) -> None:
    app.tasks["unit.ok"].delay("s3cret")
    app.tasks["unit.ok"].delay("s3cret")
    assert app.tasks["unit.fail"].delay().failed()
    ok = {"task": "unit.ok", "queue": contrib.EAGER}
    assert value(registry, "celery_tasks_started_total", **ok) == 2
    assert value(registry, "celery_tasks_succeeded_total", **ok) == 2
    assert value(registry, "celery_task_runtime_seconds_count", **ok) == 2
    failed = {"task": "unit.fail", "queue": contrib.EAGER, "exception": "KeyError"}
    assert value(registry, "celery_tasks_failed_total", **failed) == 1
    # Nothing is left in progress, and no argument is a label value.
    from pytheus.exposition import generate_metrics

    text = generate_metrics(registry)
    assert "s3cret" not in text
    assert 'celery_tasks_in_progress{task="unit.ok"' in text
    assert all(
        line.endswith(" 0.0") for line in text.splitlines() if line.startswith("celery_tasks_in_")
    )


def test_label_values_are_bounded(app: Celery) -> None:
    m = contrib.get_metrics()
    assert m is not None
    assert m.task_name("unit.ok") == "unit.ok"
    assert m.task_name("user-42-report") == contrib.OTHER
    assert m.task_name(None) == contrib.OTHER
    assert m.queue({"routing_key": "celery"}) == "celery"
    assert m.queue({"routing_key": "tmp.queue.8d2f"}) == contrib.OTHER
    assert m.queue({}) == contrib.OTHER
    assert m.queue({"is_eager": True}) == contrib.EAGER


def test_other_apps_are_left_alone(app: Celery, registry: CollectorRegistry) -> None:
    other = Celery("other", set_as_current=False)
    other.conf.task_always_eager = True

    @other.task(name="other.ok", shared=False)
    def ok() -> None: ...

    ok.delay()
    assert value(registry, "celery_tasks_started_total", task="other.ok", queue="<eager>") is None


def test_instrument_again_replaces_the_metrics(app: Celery, registry: CollectorRegistry) -> None:
    first = contrib.get_metrics()
    second = contrib.instrument(app, registry=registry, namespace="jobs")
    assert second is not first
    names = {getattr(c, "name", "") for c in registry.collectors()}
    assert "jobs_tasks_started" in names
    assert "celery_tasks_started" not in names
    app.tasks["unit.ok"].delay("x")
    assert value(registry, "jobs_tasks_started_total", task="unit.ok", queue="<eager>") == 1


def test_uninstrument_disconnects(app: Celery, registry: CollectorRegistry) -> None:
    contrib.uninstrument()
    assert registry.collectors() == []
    app.tasks["unit.ok"].delay("x")  # no handler left to count it (nor to fail)
    assert contrib.get_metrics() is None


def test_a_failing_handler_never_breaks_the_task(
    app: Celery,
    registry: CollectorRegistry,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    m = contrib.get_metrics()
    assert m is not None

    def broken(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("broken metrics")

    monkeypatch.setattr(m, "task_name", broken)
    with caplog.at_level(logging.ERROR, logger="pytheus.contrib.celery"):
        for _ in range(3):
            assert app.tasks["unit.ok"].delay("abc").get() == 3
    logged = [r for r in caplog.records if "broken metrics" in (r.exc_text or str(r.exc_info))]
    # Once per handler, not once per task.
    assert 1 <= len(logged) <= len(contrib._HANDLERS)
    assert len({r.getMessage() for r in logged}) == len(logged)


def test_a_retry_that_starts_before_the_first_run_ended(
    app: Celery, registry: CollectorRegistry
) -> None:
    """A task that retries itself publishes its own id again: a thread pool may start the
    retry before the first run's task_postrun. Each run is still timed and ended once."""
    from celery import signals

    task = app.tasks["unit.ok"]
    labels = {"task": "unit.ok", "queue": "celery", "worker": "w@test"}

    def start() -> object:
        task.push_request(id="same-id", hostname="w@test", delivery_info={"routing_key": "celery"})
        request = task.request
        signals.task_prerun.send(sender=task, task_id="same-id", task=task, args=(), kwargs={})
        return request

    def end(request: object) -> None:
        assert task.request is request
        signals.task_postrun.send(
            sender=task, task_id="same-id", task=task, args=(), kwargs={}, state="SUCCESS"
        )
        task.pop_request()

    first = start()
    second = start()  # pushed on top of the first, as another thread's would be its own
    assert value(registry, "celery_tasks_in_progress", **labels) == 2
    end(second)
    end(first)
    assert value(registry, "celery_tasks_in_progress", **labels) == 0
    assert value(registry, "celery_task_runtime_seconds_count", task="unit.ok", queue="celery") == 2


def test_celery_is_imported_only_when_instrumenting() -> None:
    # A Django site imports this module at start-up whether CELERY is on or not; Celery
    # itself costs some 0.4 s to import, which only a site that turns CELERY on pays.
    code = (
        "import sys\n"
        "from pytheus.contrib import celery\n"
        "celery.uninstrument()\n"
        "print('celery' in sys.modules)\n"
        "celery.instrument(registry=None)\n"
        "print('celery' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.split() == ["False", "True"], out.stderr
