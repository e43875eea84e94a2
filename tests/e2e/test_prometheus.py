"""End to end, as in production: the demo under gunicorn (4 workers, Redis backend), scraped
by a real Prometheus server; the numbers are checked where an operator reads them, in PromQL.
"""

from __future__ import annotations

import math
import re
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.e2e.helpers import (
    START_TIMEOUT,
    PrometheusServer,
    answers,
    demo_env,
    http_get,
    manage,
    running,
    wait_until,
)
from tests.servers import LOOPBACK, RedisServer, free_port, promtool_check_metrics

WORKERS = 4
FIRST, TOTAL = 10, 60  # requests to /fast/, sent in two rounds (see below)
# Prometheus scrapes every second; each worker flushes to Redis every second.
LANDING_TIMEOUT = 30.0

FAST = 'django_http_requests_total{job="demo",method="GET",view="/fast/",status="200"}'


def fast_requests(port: int, n: int) -> None:
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: http_get(port, "/fast/")[0], range(n)))
    assert statuses == [200] * n


@pytest.mark.slow
def test_demo_under_gunicorn_scraped_by_prometheus(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    env = demo_env(
        tmp_path / "demo.sqlite3",
        PYTHEUS_REDIS_URL=redis_server.url,
        PYTHEUS_REDIS_PREFIX=f"e2e{uuid.uuid4().hex[:12]}",  # the session's Redis is shared
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
        # /metrics itself is not counted.
        wait_until(
            lambda: answers(port, "/metrics"), START_TIMEOUT, "gunicorn did not answer", (log,)
        )
        with PrometheusServer(tmp_path / "prometheus", [f"{LOOPBACK}:{port}"]) as prometheus:
            logs = (log, prometheus.log_path)
            wait_until(
                lambda: prometheus.scalar('up{job="demo"}') == 1,
                LANDING_TIMEOUT,
                "Prometheus did not scrape the demo successfully",
                logs,
            )
            seen: list[float | None] = []

            def landed(expected: int) -> bool:
                value = prometheus.scalar(f"sum({FAST})")
                seen.append(value)
                # Never more than was sent, at any scrape, from any worker.
                assert value is None or value <= expected, seen
                return value == expected

            # Two rounds, so that the counters rise between scrapes and rate() has a slope.
            fast_requests(port, FIRST)
            wait_until(
                lambda: landed(FIRST), LANDING_TIMEOUT, f"Prometheus never saw {FIRST}", logs
            )
            fast_requests(port, TOTAL - FIRST)
            wait_until(
                lambda: landed(TOTAL),
                LANDING_TIMEOUT,
                f"Prometheus never saw {TOTAL} requests (saw {seen[-5:]})",
                logs,
            )
            # It stays exactly TOTAL over the next scrapes, whichever worker answers them...
            scrapes = prometheus.scalar('count_over_time(up{job="demo"}[10m])') or 0
            for more in (1, 2, 3):
                wait_until(
                    lambda more=more: (
                        (prometheus.scalar('count_over_time(up{job="demo"}[10m])') or 0)
                        >= scrapes + more
                    ),
                    LANDING_TIMEOUT,
                    "Prometheus stopped scraping",
                    logs,
                )
                assert prometheus.scalar(f"sum({FAST})") == TOTAL
            # ...and no scrape ever showed more.
            assert prometheus.scalar(f"max(max_over_time({FAST}[10m]))") == TOTAL

            median = prometheus.scalar(
                "histogram_quantile(0.5, sum by (le) (rate("
                'django_http_request_duration_seconds_bucket{job="demo",view="/fast/"}[1m])))'
            )
            assert median is not None
            assert not math.isnan(median)
            assert 0 < median < 1.0, median  # /fast/ answers in milliseconds
            assert (
                prometheus.scalar(
                    'sum(django_http_request_duration_seconds_count{job="demo",view="/fast/"})'
                )
                == TOTAL
            )

            # Every view over HTTP, and the business metrics seen in Prometheus.
            traffic = manage(
                env, "generate_traffic", "--url", f"http://{LOOPBACK}:{port}/", "--requests", "120"
            )
            orders = sum(map(int, re.findall(r"POST /checkout/ +(\d+) x 302", traffic.stdout)))
            checkouts = sum(map(int, re.findall(r"POST /checkout/ +(\d+) x \d{3}", traffic.stdout)))
            errors = sum(map(int, re.findall(r"GET +/boom/ +(\d+) x 500", traffic.stdout)))
            assert orders > 0, traffic.stdout
            assert errors > 0, traffic.stdout
            wait_until(
                lambda: prometheus.scalar('sum(shop_orders_total{job="demo"})') == orders,
                LANDING_TIMEOUT,
                f"Prometheus never saw {orders} orders",
                logs,
            )
            wait_until(
                lambda: (
                    prometheus.scalar(
                        'sum(django_http_exceptions_total{job="demo",type="DemoError"})'
                    )
                    == errors
                ),
                LANDING_TIMEOUT,
                f"Prometheus never saw {errors} DemoErrors",
                logs,
            )
            # The summary has no quantiles on the Redis backend, only _count and _sum.
            wait_until(
                lambda: (
                    prometheus.scalar('shop_checkout_duration_seconds_count{job="demo"}')
                    == checkouts
                ),
                LANDING_TIMEOUT,
                f"Prometheus never saw {checkouts} timed checkouts",
                logs,
            )
            assert prometheus.query('shop_checkout_duration_seconds{job="demo"}') == []

        # What Prometheus scraped passes promtool's parser and linter.
        status, body = http_get(port, "/metrics")
        assert status == 200
        text = body.decode()
        assert "shop_orders_total" in text
        assert "pytheus_backend_errors_total" in text
        promtool_check_metrics(text)
        assert server.poll() is None, log.read_text()
