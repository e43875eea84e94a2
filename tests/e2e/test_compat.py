"""PYTHEUS["COMPAT"] = "django_prometheus" against django-prometheus 2.5 itself, through PromQL.

One site (tests/e2e/compat_site) runs twice under gunicorn: instrumented by our app in
compatibility mode (2 workers, Redis backend), and by django-prometheus (its middleware,
ENGINE, cache BACKEND and model mixin; 1 worker, /metrics on a port of its own). Both get
the same requests, one at a time, in the same order; a real Prometheus scrapes each (job
"django" in both), and django-prometheus's documented example queries (the recording rules
of its examples/prometheus/django.rules) are asked of both:

* as documented, with their rates: the same series come back (rates themselves depend on
  when each target was scraped, so their values are not compared);
* with each ``rate(x[w])`` replaced by ``x``: the same series with the same values, exactly.
  Latency quantiles depend on how long each server took, so only their series are compared.

Several documented queries name series that django-prometheus 2.5 no longer exposes
(``django_http_requests_total_by_method`` without its ``_total``, ...): they are asked as
documented, must be empty on both sides alike, and are asked again with the names it exposes.
"""

from __future__ import annotations

import http.client
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import (
    ROOT,
    START_TIMEOUT,
    PrometheusServer,
    http_get,
    running,
    wait_until,
)
from tests.servers import LOOPBACK, RedisServer, free_port

LANDING_TIMEOUT = 60.0
SIDES = ("pytheus", "django_prometheus")

# (method, path, headers, body, expected status), sent to both sites in this order.
TRAFFIC: list[tuple[str, str, dict[str, str], bytes, int]] = [
    *[("GET", "/fast/", {}, b"", 200)] * 5,
    *[("GET", "/fast/", {"X-Requested-With": "XMLHttpRequest"}, b"", 200)] * 2,
    ("OPTIONS", "/fast/", {}, b"", 200),
    ("POST", "/echo/", {"Content-Type": "application/octet-stream"}, b"e" * 3000, 200),
    ("GET", "/page/", {}, b"", 200),
    ("GET", "/page/", {}, b"", 200),
    ("GET", "/boom/", {}, b"", 500),
    ("GET", "/missing/", {}, b"", 404),
    ("GET", "/no/such/page/", {}, b"", 404),
    *[
        ("POST", "/notes/", {"Content-Type": "application/x-www-form-urlencoded"}, t, 201)
        for t in (b"text=a", b"text=b", b"text=c")
    ],
    ("POST", "/notes/1/", {"Content-Type": "application/x-www-form-urlencoded"}, b"text=A", 200),
    ("DELETE", "/notes/2/", {}, b"", 204),
    ("GET", "/notes/", {}, b"", 200),
    *[("GET", "/cached/", {}, b"", 200)] * 4,
    ("GET", "/stream/", {}, b"", 200),
    ("POST", "/bulk/?n=1", {}, b"", 200),
    ("POST", "/bulk/?n=2", {}, b"", 200),
    ("POST", "/db-error/", {}, b"", 409),
]
VIEW_EXCEPTIONS = {"boom": 1, "missing": 1}  # views that raised (Http404 included)
# Totals that differ by design (README, "Coming from django-prometheus"), ours minus theirs.
KNOWN_DIFFERENCES = {
    # post_save counts the saves that succeeded; the mixin counted attempts, and the second
    # insert of /db-error/ failed.
    "documented model inserts": -1,
    # A post_delete receiver (how deletes are counted without a mixin) makes Django delete
    # an instance inside a transaction: one more statement (BEGIN) for DELETE /notes/2/.
    "documented db execute": +1,
    "exposed db query durations": +1,
}


def _queries() -> list[tuple[str, str]]:
    """(name, PromQL): django-prometheus's documented queries, then as its names are exposed."""
    out: list[tuple[str, str]] = []

    def rate(name: str, by: str, window: str = "30s", agg: str = "sum") -> str:
        return f"{agg}(rate({name}[{window}])) by ({by})"

    h = "django_http_"
    for name in (
        "requests_before_middlewares_total",
        "requests_unknown_latency_total",
        "ajax_requests_total",
        "responses_before_middlewares_total",
        "requests_unknown_latency_including_middlewares_total",
        "requests_body_total_bytes",
        "responses_streaming_total",
        "responses_body_total_bytes",
    ):
        out.append((f"documented {name}", rate(h + name, "job")))
    by_labels = [
        ("requests_total_by_method", "job"),
        ("requests_total_by_method", "job, method"),
        ("requests_total_by_transport", "job, transport"),
        ("requests_total_by_view_transport_method", "job, view"),
        ("requests_total_by_view_transport_method", "job, view, transport, method"),
        ("responses_total_by_templatename", "job, templatename"),
        ("responses_total_by_status", "job, status"),
        ("responses_total_by_status_name_method", "job, status, name, method"),
        ("responses_total_by_charset", "job, charset"),
        ("exceptions_total_by_type", "job, type"),
        ("exceptions_total_by_view", "job, view"),
    ]
    for name, by in by_labels:
        out.append((f"documented {name} by {by}", rate(h + name, by)))
    for name in ("requests_latency_including_middlewares_seconds", "requests_latency_seconds"):
        for q in (0.5, 0.95, 0.99, 0.999):
            expr = f"histogram_quantile({q}, {rate(h + name + '_bucket', 'job, le')})"
            out.append((f"documented {name} q{q}", expr))
    for op in ("inserts", "updates", "deletes"):
        out.append((f"documented model {op}", rate(f"django_model_{op}_total", "job, model", "1m")))
    for name in ("new_connections", "new_connection_errors", "execute", "execute_many"):
        out.append((f"documented db {name}", rate(f"django_db_{name}_total", "alias, vendor")))
    out.append(("documented db errors", rate("django_db_errors_total", "alias, vendor, type")))

    # The same questions of the series django-prometheus 2.5 actually exposes.
    for name in ("requests_body_total_bytes", "responses_body_total_bytes"):
        for part in ("_count", "_sum"):
            out.append((f"exposed {name}{part}", rate(h + name + part, "job")))
        out.append((f"exposed {name} buckets", rate(h + name + "_bucket", "job, le")))
    for name, by in by_labels:
        exposed = name.replace("status_name_method", "status_view_method")
        exposed_by = by.replace("name", "view")
        out.append((f"exposed {exposed} by {exposed_by}", rate(h + exposed + "_total", exposed_by)))
    for q in (0.5, 0.99):
        bucket = h + "requests_latency_seconds_by_view_method_bucket"
        out.append(
            (
                f"exposed latency by view q{q}",
                f"histogram_quantile({q}, {rate(bucket, 'job, view, le')})",
            )
        )
    out.append(
        (
            "exposed db query durations",
            rate("django_db_query_duration_seconds_count", "alias, vendor"),
        )
    )
    for name in ("get", "get_hits", "get_misses", "get_fail"):
        out.append((f"exposed cache {name}", rate(f"django_cache_{name}_total", "backend")))
    return out


QUERIES = _queries()
# Series whose values depend on how long each server took: compared by their labels only.
TIMED = re.compile(r"histogram_quantile")
# Documented queries of names django-prometheus 2.5 does not expose: empty on both sides.
STALE_NAMES = re.compile(
    r"rate\(django_http_(requests_body_total_bytes|responses_body_total_bytes|"
    r"requests_total_by_\w+|responses_total_by_\w+|exceptions_total_by_\w+|"
    r"requests_latency_seconds_bucket)\["
)


def raw(expr: str) -> str:
    """``expr`` with each ``rate(x[w])`` replaced by ``x``: totals instead of rates."""
    return re.sub(r"rate\((\w+)\[\w+\]\)", r"\1", expr)


def series(result: list[dict[str, Any]]) -> dict[frozenset[tuple[str, str]], float]:
    """Each series of a query's result by its labels (``instance`` left out: the two sites
    have different addresses). ``le`` is compared as a number: prometheus_client wrote
    bounds from 1e6 on as ``1.048576e+06``, ours are ``1048576.0``."""
    out = {}
    for r in result:
        labels = frozenset(
            (k, str(float(v)) if k == "le" else v)
            for k, v in r["metric"].items()
            if k != "instance"
        )
        out[labels] = float(r["value"][1])
    return out


def send(port: int, method: str, path: str, headers: dict[str, str], body: bytes) -> int:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=30)
    try:
        conn.request(method, path, body=body or None, headers={"Connection": "close", **headers})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


class Site:
    """One side: its environment, database, gunicorn, and the Prometheus that scrapes it."""

    def __init__(self, side: str, redis: RedisServer, tmp: Path) -> None:
        self.side = side
        self.dir = tmp / side
        self.dir.mkdir()
        self.port = free_port()
        self.export_port = free_port()
        prefix = f"compat{uuid.uuid4().hex[:10]}{side[:3]}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("PYTHEUS_")},
            "DJANGO_SETTINGS_MODULE": "tests.e2e.compat_site.settings",
            "PYTHONPATH": str(ROOT),
            "COMPAT_SIDE": side,
            "COMPAT_REDIS_URL": redis.url,
            "COMPAT_PREFIX": prefix,
            "COMPAT_DB_PATH": str(self.dir / "db.sqlite3"),
            "COMPAT_EXPORT_PORT": str(self.export_port),
        }
        self.log = self.dir / "gunicorn.log"

    def django_admin(self, *args: str) -> None:
        # Set-up commands record into a Redis namespace of their own, not the site's.
        env = {**self.env, "COMPAT_PREFIX": self.env["COMPAT_PREFIX"] + "setup"}
        result = subprocess.run(
            [sys.executable, "-m", "django", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr

    @property
    def metrics_target(self) -> str:
        port = self.export_port if self.side == "django_prometheus" else self.port
        return f"{LOOPBACK}:{port}"

    @contextmanager
    def serving(self) -> Iterator[PrometheusServer]:
        self.django_admin("migrate", "--verbosity", "0")
        workers = "1" if self.side == "django_prometheus" else "2"
        command = [
            sys.executable, "-m", "gunicorn", "tests.e2e.compat_site.wsgi",
            "--workers", workers, "--bind", f"{LOOPBACK}:{self.port}", "--graceful-timeout", "5",
        ]  # fmt: skip
        with running(command, self.env, self.log) as server:
            # Waiting on /metrics counts no request on either side (ours excludes it,
            # django-prometheus serves it on a port of its own), so both start from zero.
            wait_until(
                self._metrics_answer,
                START_TIMEOUT,
                f"the {self.side} site did not start",
                (self.log,),
            )
            with PrometheusServer(
                self.dir / "prometheus", [self.metrics_target], job="django"
            ) as p:
                wait_until(
                    lambda: p.scalar('up{job="django"}') == 1,
                    LANDING_TIMEOUT,
                    f"Prometheus did not scrape the {self.side} site",
                    (self.log, p.log_path),
                )
                yield p
            assert server.poll() is None, self.log.read_text()

    def _metrics_answer(self) -> bool:
        port = self.metrics_target.rpartition(":")[2]
        try:
            return http_get(int(port), "/metrics", timeout=2.0)[0] == 200
        except OSError:
            return False


@pytest.mark.slow
def test_compat_mode_answers_django_prometheus_queries_alike(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    sites = {side: Site(side, redis_server, tmp_path) for side in SIDES}
    with ExitStack() as stack:
        prom = {side: stack.enter_context(site.serving()) for side, site in sites.items()}
        for side in SIDES:
            first = prom[side].scalar("sum(django_http_requests_before_middlewares_total)")
            assert first in (None, 0), (side, first)
        for method, path, headers, body, expected in TRAFFIC:
            statuses = {s: send(sites[s].port, method, path, headers, body) for s in SIDES}
            assert statuses == dict.fromkeys(SIDES, expected), (method, path, statuses)

        def landed(side: str) -> bool:
            total = prom[side].scalar("sum(django_http_requests_before_middlewares_total)")
            return total == len(TRAFFIC)

        for side in SIDES:
            wait_until(
                lambda side=side: landed(side),
                LANDING_TIMEOUT,
                f"the {side} site's requests did not all reach Prometheus",
                (sites[side].log, prom[side].log_path),
            )
        # Two more scrapes of each, so that every worker's last flush is in.
        for side in SIDES:
            count = prom[side].scalar('count_over_time(up{job="django"}[10m])') or 0
            wait_until(
                lambda side=side, count=count: (
                    (prom[side].scalar('count_over_time(up{job="django"}[10m])') or 0) >= count + 2
                ),
                LANDING_TIMEOUT,
                "Prometheus stopped scraping",
            )
        _compare(prom)


def _compare(prom: dict[str, PrometheusServer]) -> None:
    ours, theirs = prom["pytheus"], prom["django_prometheus"]
    differences = []
    checked_values = 0
    for name, expr in QUERIES:
        documented = name.startswith("documented")
        got = {side: series(p.query(expr)) for side, p in prom.items()}
        if documented and STALE_NAMES.search(expr):
            assert got["pytheus"] == got["django_prometheus"] == {}, (name, got)
            continue
        if set(got["pytheus"]) != set(got["django_prometheus"]):
            differences.append((name, "series", got))
            continue
        if TIMED.search(expr):
            continue
        totals = {side: series(p.query(raw(expr))) for side, p in prom.items()}
        delta = KNOWN_DIFFERENCES.get(name, 0)
        expected = {k: v + delta for k, v in totals["django_prometheus"].items()}
        if totals["pytheus"] != expected:
            differences.append((name, raw(expr), totals))
        checked_values += 1
    assert not differences, "\n".join(map(str, differences))
    assert checked_values >= 30, checked_values
    # Non-empty where the traffic made data: a comparison of nothing proves nothing.
    for expr in (
        "django_db_execute_many_total",
        'django_db_errors_total{type="IntegrityError"}',
        'django_model_deletes_total{model="note"}',
        'django_http_exceptions_total_by_type_total{type="Http404"}',
        'django_http_responses_total_by_templatename_total{templatename="compat_site/page.html"}',
        'django_cache_get_hits_total{backend="redis"}',
        "django_http_ajax_requests_total > 0",
    ):
        for side, p in prom.items():
            assert p.query(expr), (side, expr)
    # The one documented difference: django-prometheus observed a request whose view raised
    # twice in its latency histogram (in process_exception, then process_response).
    count = "sum by (view) (django_http_requests_latency_seconds_by_view_method_count)"
    ours_count, theirs_count = (series(p.query(count)) for p in (ours, theirs))
    for labels, value in ours_count.items():
        view = dict(labels)["view"]
        extra = VIEW_EXCEPTIONS.get(view, 0)
        assert theirs_count[labels] == value + extra, (view, value, theirs_count[labels])
