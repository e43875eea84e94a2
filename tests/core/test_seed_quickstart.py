"""Every snippet of the user's quickstart, as written (``prometheus.metrics`` read as
``pytheus.metrics``, a typo in the seed), run in order as a user would paste them."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from pytheus.samples import MetricFamily
from tests.core.helpers import Parsed


class QueueCollector:
    """A custom collector, as the quickstart's ``REGISTRY.register(mycollector)`` assumes."""

    def collect(self) -> Iterator[MetricFamily]:
        family = MetricFamily("jobs_queued", "gauge", "Jobs waiting in each queue.")
        family.add(3, {"queue": "emails"})
        family.add(0, {"queue": "reports"})
        yield family


def test_quickstart_as_written(exposition: Callable[..., tuple[Parsed, Parsed]]) -> None:
    # ## Metrics
    from pytheus.metrics import Counter

    page_hit_total = Counter("page_hit_total", "documentation string")

    page_hit_total.inc()
    # or specify the amount
    page_hit_total.inc(2)

    # ## Registry
    from pytheus.registry import REGISTRY

    mycollector = QueueCollector()
    REGISTRY.register(mycollector)

    # ## Exposition
    from pytheus.exposition import generate_metrics

    metrics_data = generate_metrics()

    from pytheus.exposition import PROMETHEUS_CONTENT_TYPE

    headers = {"Content-Type": PROMETHEUS_CONTENT_TYPE}

    # What the user gets: exactly these lines (families sorted by name), valid for
    # promtool and both parsers.
    assert headers == {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
    assert metrics_data == (
        "# HELP jobs_queued Jobs waiting in each queue.\n"
        "# TYPE jobs_queued gauge\n"
        'jobs_queued{queue="emails"} 3.0\n'
        'jobs_queued{queue="reports"} 0.0\n'
        "# HELP page_hit_total documentation string\n"
        "# TYPE page_hit_total counter\n"
        "page_hit_total 3.0\n"
    )
    text, om = exposition()
    assert text.text == metrics_data
    for parsed in (text, om):
        assert parsed.value("page_hit_total") == 3.0
        assert parsed.value("jobs_queued", {"queue": "emails"}) == 3.0
    assert REGISTRY.get_sample_value("page_hit_total") == 3.0


def test_quickstart_counter_name_is_not_doubled() -> None:
    from pytheus.exposition import generate_metrics
    from pytheus.metrics import Counter

    page_hit_total = Counter("page_hit_total", "documentation string")
    page_hit_total.inc()
    assert "_total_total" not in generate_metrics()
    assert page_hit_total.name == "page_hit"


def test_generate_metrics_with_an_empty_registry_is_empty() -> None:
    from pytheus.exposition import generate_metrics

    assert generate_metrics() == ""
