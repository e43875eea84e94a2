"""Section "Django": our middleware and query observer against django-prometheus.

Four configurations of one minimal Django project (see ``django_worker.py``): bare
Django, Django with django-prometheus, Django with django_pytheus, and with django_pytheus
in compatibility mode. Django's settings are global to a process, so each runs in a worker
process of its own, and one batch of each is timed in every round, in rotating order, as
the harness does for any row.

What matters is what each library *adds* to bare Django, a difference of two noisy
figures; so bare Django is each row's reference (``_harness.Reference``), timed in the
same rounds, and the ratio is the median over the rounds of
``(ours - bare) / (theirs - bare)``, with more rounds than other sections.

The rows, after ANCHORS.md:

* middleware overhead: a GET of a trivial view (``HttpResponse("ok")``) through
  ``WSGIHandler()``, called directly (no socket), response iterated and closed;
* per ``SELECT 1`` query: ``connection.cursor().execute("SELECT 1")`` outside any
  request, on an in-memory SQLite database: theirs through its database ENGINE
  (``django_prometheus.db.backends.sqlite3``), ours through the execute wrapper that
  our app puts on every connection;
* the same query on one open cursor (informational): django-prometheus makes a new
  cursor class each time a cursor is opened, which this row leaves out;
* the request and the query again with ours in compatibility mode
  (``PYTHEUS["COMPAT"] = "django_prometheus"``): both metric sets recorded at once, which
  must still cost well below what django-prometheus adds.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from _harness import Reference, Row, Section, Settings
from _worker import RemoteContender, Worker

__all__ = ["SECTION"]

HERE = Path(__file__).resolve().parent
WORKER = HERE / "django_worker.py"
CONFIGS = ("bare", "django-prometheus", "pytheus", "pytheus-compat")

# A request to bare Django takes some 45 us: batches of --quick's 2 ms would hold too
# few requests for the differences to mean anything, even in a smoke test.
QUICK_BATCH_SECONDS = 0.01
# Added times are differences of noisy figures: five times the usual rounds.
ROUNDS_FACTOR = 5


def _environment() -> dict[str, str]:
    # The settings are built in the worker; none may come from the environment.
    dropped = ("DJANGO_SETTINGS_MODULE", "PYTHEUS_BACKEND_CLASS", "PYTHEUS_BACKEND_CONFIG")
    return {k: v for k, v in os.environ.items() if k not in dropped}


def _side(worker: Worker, key: str, seconds: float) -> Callable[[], RemoteContender]:
    return lambda: worker.contender(key, {}, seconds)


def _rows(workers: dict[str, Worker], settings: Settings) -> Sequence[Row]:
    seconds = max(settings.batch_seconds, QUICK_BATCH_SECONDS)
    bare, theirs, ours, compat = (workers[c] for c in CONFIGS)

    def row(
        key: str,
        label: str,
        reference: str,
        target: float | None,
        *,
        note: str,
        mine: Worker = ours,
    ) -> Row:
        return Row(
            key,
            label,
            "us",
            _side(theirs, key, seconds),
            _side(mine, key, seconds),
            target,
            note=note,
            reference=Reference(reference, _side(bare, key, seconds)),
            rounds_factor=ROUNDS_FACTOR,
        )

    hello = theirs.hello
    return [
        row("django_request", "middleware overhead, per request",
            "per request, bare Django (trivial view, WSGI handler)", 0.3,
            note=f"Django {hello['django']}, django-prometheus {hello['django_prometheus']}. "
            "Per request: a GET of a view returning `HttpResponse(\"ok\")` through "
            "`WSGIHandler()`, called directly (no socket), the response iterated and closed; "
            "no other middleware. Theirs: `PrometheusBeforeMiddleware` first, "
            "`PrometheusAfterMiddleware` last; ours: `PytheusMiddleware` (in-memory "
            "backend). In parentheses: the time added to bare Django (the line above, "
            "same rounds), the median of per-round differences; the ratio is the median "
            "of per-round ratios of added times, ours/theirs, over "
            f"{settings.rounds * ROUNDS_FACTOR} rounds per row."),
        row("django_select", "per `SELECT 1` query (its database ENGINE wrapper)",
            "per `SELECT 1` query, bare Django", 0.2,
            note="Per query: `connection.cursor().execute(\"SELECT 1\")`, in-memory SQLite, "
            "outside any request. Theirs: ENGINE `django_prometheus.db.backends.sqlite3`; "
            "ours: the execute wrapper our app puts on every connection (any ENGINE)."),
        row("django_select_reused", "per `SELECT 1` query on one open cursor",
            "per `SELECT 1` query on one open cursor, bare Django", None,
            note="On one open cursor, `cursor.execute(\"SELECT 1\")`: without the cursor "
            "class django-prometheus makes each time a cursor is opened (informational)."),
        row("django_request_compat", "middleware overhead, per request, compat mode",
            "per request, bare Django (trivial view, WSGI handler)", 0.5, mine=compat,
            note="As the first row, ours with `PYTHEUS[\"COMPAT\"] = \"django_prometheus\"`: "
            "django-prometheus's 19 HTTP series recorded as well as ours, by the same "
            "middleware. It must stay well below django-prometheus's own cost."),
        row("django_select_compat", "per `SELECT 1` query, compat mode",
            "per `SELECT 1` query, bare Django", 0.3, mine=compat,
            note="As the `SELECT 1` row, ours in compat mode: `django_db_execute_total` "
            "counted as well."),
    ]  # fmt: skip


@contextlib.contextmanager
def build(settings: Settings) -> Iterator[Sequence[Row]]:
    """Start a worker per configuration, hold them while the rows run."""
    env = _environment()
    with contextlib.ExitStack() as stack:
        workers: dict[str, Worker] = {}
        for config in CONFIGS:
            worker = Worker([sys.executable, str(WORKER), config], env, f"Django worker ({config})")
            stack.callback(worker.close)
            hello: dict[str, Any] = worker.hello
            if hello.get("config") != config:
                raise RuntimeError(f"the {config} worker says it is {hello!r}")
            workers[config] = worker
        yield _rows(workers, settings)


SECTION = Section(
    key="django",
    title="Django",
    theirs_name="django-prometheus",
    ours_name="django_pytheus (ours)",
    build=build,
    notes=(
        "Each configuration (bare, django-prometheus, ours, ours in compat mode) runs in a "
        "process of its own "
        "with settings built by `settings.configure()`; one batch of each per round.",
    ),
)
