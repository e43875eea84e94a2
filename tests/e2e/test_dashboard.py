"""The dashboard and the rules against real data: the demo under gunicorn (Redis backend) gets
the traffic of ``generate_traffic``, a real Prometheus scrapes it with prometheus.yml's rule
files loaded, and every recording rule and every query of dashboards/django.json is
evaluated through Prometheus's HTTP API: no error, and data wherever the traffic makes some.
"""

from __future__ import annotations

import json
import math
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.helpers import (
    ROOT,
    START_TIMEOUT,
    PrometheusServer,
    answers,
    demo_env,
    http_get,
    manage,
    running,
    wait_until,
)
from tests.servers import LOOPBACK, RedisServer, free_port

WORKERS = 2
LANDING_TIMEOUT = 60.0
# Panels the demo's traffic leaves empty, and why: every other one must show data.
MAY_BE_EMPTY = {
    "Query errors": "no query of the demo fails",
    "Dropped series": "no metric of the demo reaches its series limit",
}
VARIABLES = {"$job": ".*", "$instance": ".*", "$view": ".*"}
# One request to each view the test reads by itself, before the traffic, and its status.
PRIMED = {"/fast/": 200, "/slow/?max=0.05": 200, "/products/": 200, "/boom/": 500}
VIEWS_READ = {"/fast/", "/slow/", "/products/", "/boom/"}


def rule_files() -> list[Path]:
    """The rule files prometheus.yml loads (relative to it, as Prometheus resolves them)."""
    config = yaml.safe_load((ROOT / "prometheus.yml").read_text())
    return [ROOT / path for path in config["rule_files"]]


def rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in rule_files()
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


def panel_queries() -> list[tuple[str, str]]:
    dashboard = json.loads((ROOT / "dashboards" / "django.json").read_text())
    out = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in VARIABLES.items():
                expr = expr.replace(variable, value)
            out.append((panel["title"], expr))
    return out


def finite(result: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(float(r["value"][1])) for r in result)


def scraped_views(prometheus: PrometheusServer) -> set[str]:
    result = prometheus.query("count by (view) (django_http_requests_total)")
    return {r["metric"]["view"] for r in result}


def views_with(prometheus: PrometheusServer, recorded: str) -> set[str]:
    """The views whose recorded rate ``recorded`` is above zero."""
    return {r["metric"]["view"] for r in prometheus.query(f"{recorded} > 0")}


@pytest.mark.slow
def test_every_rule_and_panel_query_answers_with_the_demos_data(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    env = demo_env(
        tmp_path / "demo.sqlite3",
        PYTHEUS_REDIS_URL=redis_server.url,
        PYTHEUS_REDIS_PREFIX=f"dash{uuid.uuid4().hex[:12]}",
        DEMO_DEBUG="0",
        DEMO_SECRET_KEY=uuid.uuid4().hex * 2,
    )
    manage(env, "demo_setup")
    port = free_port()
    gunicorn = [
        sys.executable, "-m", "gunicorn", "demo_project.wsgi",
        "--workers", str(WORKERS),
        "--bind", f"{LOOPBACK}:{port}",
        "--graceful-timeout", "5",
    ]  # fmt: skip
    log = tmp_path / "gunicorn.log"
    with running(gunicorn, env, log) as server:
        wait_until(
            lambda: answers(port, "/metrics"), START_TIMEOUT, "gunicorn did not answer", (log,)
        )
        with PrometheusServer(
            tmp_path / "prometheus", [f"{LOOPBACK}:{port}"], rule_files=rule_files()
        ) as prometheus:
            logs = (log, prometheus.log_path)
            wait_until(
                lambda: prometheus.scalar('up{job="demo"}') == 1,
                LANDING_TIMEOUT,
                "Prometheus did not scrape the demo",
                logs,
            )
            # A series whose first scrape already holds all its requests shows no rate: the
            # views read one by one below are scraped once before the traffic.
            for path, status in PRIMED.items():
                assert http_get(port, path)[0] == status, path
            wait_until(
                lambda: scraped_views(prometheus) >= VIEWS_READ,
                LANDING_TIMEOUT,
                f"Prometheus did not scrape the views {sorted(VIEWS_READ)}",
                logs,
            )
            traffic = manage(
                env, "generate_traffic", "--url", f"http://{LOOPBACK}:{port}/", "--requests", "150"
            )
            assert "x 500" in traffic.stdout, traffic.stdout  # /boom/ was among them

            # Prometheus loaded the rules and evaluates every one without error.
            recorded = [r["record"] for r in rules() if "record" in r]
            alerts = [r["alert"] for r in rules() if "alert" in r]
            missing: list[str] = []

            def all_recorded() -> bool:
                missing[:] = [name for name in recorded if not finite(prometheus.query(name))]
                return not missing

            wait_until(
                all_recorded,
                LANDING_TIMEOUT,
                f"recording rules without data: {missing}",
                logs,
            )
            loaded: list[dict[str, Any]] = []

            def all_evaluated() -> bool:
                # Groups are evaluated at offsets of their own: wait for each one's first.
                status, body = http_get(prometheus.port, "/api/v1/rules")
                assert status == 200
                groups = json.loads(body)["data"]["groups"]
                loaded[:] = [rule for g in groups for rule in g["rules"]]
                return all(rule["health"] != "unknown" for rule in loaded)

            wait_until(all_evaluated, LANDING_TIMEOUT, "rules never evaluated", logs)
            # And once more after a scrape that saw the end of the traffic: the rates read
            # below, view by view, are there (each group of rules is evaluated on its own).
            expected = {
                "job_instance_view:django_http_requests:rate5m": VIEWS_READ,
                "job_instance_view:django_http_errors:rate5m": {"/boom/"},
                "job_instance_view:django_db_queries_per_request_count:rate5m": {
                    "/products/",
                    "/fast/",
                },
            }
            wait_until(
                lambda: all(views_with(prometheus, r) >= v for r, v in expected.items()),
                LANDING_TIMEOUT,
                f"recorded rates missing for some of these views: {expected}",
                logs,
            )
            assert sorted(r["name"] for r in loaded) == sorted(recorded + alerts)
            for rule in loaded:
                assert rule["health"] == "ok", rule
                assert not rule.get("lastError"), rule

            # Each recording rule's expression, as written.
            for rule in rules():
                if "record" in rule:
                    assert finite(prometheus.query(rule["expr"])), rule["record"]

            # Every panel of the dashboard, as Grafana asks with every variable on "All".
            empty = []
            for title, expr in panel_queries():
                result = prometheus.query(expr)  # fails the test on any query error
                if title in MAY_BE_EMPTY:
                    continue
                if not finite(result):
                    empty.append((title, expr, result))
            assert not empty, empty

            # Some numbers where an operator reads them, known from the traffic.
            p99 = prometheus.scalar(
                "histogram_quantile(0.99, sum by (le) "
                '(job_instance_view_le:django_http_request_duration_seconds_bucket:rate5m{view="/slow/"}))'
            )
            assert p99 is not None
            assert 0.05 <= p99 <= 2.0, p99  # /slow/ sleeps 50 to 200 ms
            n_plus_one = prometheus.query(
                "histogram_quantile(0.99, sum by (view, le) "
                "(job_instance_view_le:django_db_queries_per_request_bucket:rate5m))"
            )
            by_view = {r["metric"]["view"]: float(r["value"][1]) for r in n_plus_one}
            assert by_view["/products/"] > by_view["/fast/"], by_view
            assert prometheus.scalar("max(django_db_migrations_unapplied)") == 0
            errors = prometheus.scalar(
                'sum(job_instance_view:django_http_errors:rate5m{view="/boom/"})'
            )
            assert errors is not None
            assert errors > 0
        assert server.poll() is None, log.read_text()
