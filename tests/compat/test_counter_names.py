"""The switch that keeps pytheus 0.6.1's counter names in the text format."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pytheus.exceptions import ConfigurationError
from pytheus.exposition import generate_metrics, generate_openmetrics, set_counter_names
from pytheus.metrics import Counter
from pytheus.registry import CollectorRegistry
from tests.compat.conftest import text_scrape
from tests.core.helpers import parse_openmetrics


def test_default_adds_total(backend_name: str) -> None:
    Counter("page_hits", "Hits.").inc()
    Counter("cache_hit_total", "Hits.").inc(2)
    text = generate_metrics()
    assert "# TYPE page_hits_total counter\npage_hits_total 1.0\n" in text
    assert "cache_hit_total 2.0\n" in text


def test_as_given_keeps_the_names_of_pytheus_0_6_1(backend_name: str) -> None:
    set_counter_names("as_given")
    hits = Counter("page_hits", "Hits.", required_labels=["method"])
    hits.labels(method="GET").inc()
    Counter("cache_hit_total", "Hits.").inc(2)
    text = generate_metrics()
    assert '# HELP page_hits Hits.\n# TYPE page_hits counter\npage_hits{method="GET"} 1.0\n' in (
        text
    )
    assert "page_hits_total" not in text
    assert "# TYPE cache_hit_total counter\ncache_hit_total 2.0\n" in text
    parsed = text_scrape()  # promtool and prometheus_client accept it
    assert parsed.types["page_hits"] == "counter"
    # OpenMetrics requires _total: its scrapes keep it whatever the switch says.
    om = parse_openmetrics(generate_openmetrics())
    assert om.value("page_hits_total", {"method": "GET"}) == 1.0


def test_as_given_leaves_conventional_names_alone() -> None:
    set_counter_names("as_given")
    registry = CollectorRegistry(prefix="svc")
    Counter("requests_total", "R.", registry=registry).inc()
    Counter("seconds", "S.", registry=registry, unit="cpu").inc()
    text = generate_metrics(registry)
    assert "svc_requests_total 1.0\n" in text
    assert "svc_seconds_cpu 1.0\n" in text


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="as_given"):
        set_counter_names("bare")


def test_environment_variable() -> None:
    program = (
        "from pytheus.metrics import Counter\n"
        "from pytheus.exposition import generate_metrics\n"
        "from pytheus.registry import CollectorRegistry\n"
        "r = CollectorRegistry()\n"
        "Counter('page_hits', 'Hits.', registry=r).inc()\n"
        "print(generate_metrics(r))\n"
    )
    env = {**os.environ, "PYTHEUS_COUNTER_NAMES": "as_given"}
    done = subprocess.run(
        [sys.executable, "-c", program],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "\npage_hits 1.0\n" in done.stdout
    env["PYTHEUS_COUNTER_NAMES"] = "bare"
    bad = subprocess.run(
        [sys.executable, "-c", program],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode != 0
    assert "ConfigurationError" in bad.stderr
