"""pytheus 0.6.1's labels page and the quick reference's label sections (labels.md,
quickref.md): required, partial and default labels, on both backends."""

from __future__ import annotations

import pytest

from pytheus.exceptions import LabelValidationException, UnobservableMetricException
from pytheus.metrics import Counter, Histogram
from tests.compat.conftest import text_scrape


def test_observing_without_required_labels_is_unobservable(backend_name: str) -> None:
    page_hit_total = Counter(
        "page_hit_total", "number of time this page got it", required_labels=["method"]
    )
    with pytest.raises(UnobservableMetricException):
        page_hit_total.inc()
    page_hit_total.labels({"method": "GET"}).inc()
    page_hit_total.labels(method="POST").inc(3)
    parsed = text_scrape()
    assert parsed.value("page_hit_total", {"method": "GET"}) == 1.0
    assert parsed.value("page_hit_total", {"method": "POST"}) == 3.0


def test_a_labelled_instance_can_be_kept_in_a_variable(backend_name: str) -> None:
    page_hit_total = Counter("page_hit_total", "hits", required_labels=["method"])
    page_hit_total_with_get = page_hit_total.labels({"method": "GET"})
    page_hit_total_with_get.inc()
    page_hit_total_with_get.inc()
    assert text_scrape().value("page_hit_total", {"method": "GET"}) == 2.0


def test_partial_labels_built_incrementally(backend_name: str) -> None:
    my_metric = Counter("metric_name", "desc", required_labels=["req1", "req2"])
    my_metric.labels({"req1": "1", "req2": "2"}).inc()
    partial_my_metric = my_metric.labels({"req1": "1"})
    with pytest.raises(UnobservableMetricException):
        partial_my_metric.inc()
    observable_my_metric = partial_my_metric.labels({"req2": "3"})
    observable_my_metric.inc()
    my_metric.labels(req1="4", req2="5").inc()
    parsed = text_scrape()
    assert parsed.value("metric_name_total", {"req1": "1", "req2": "2"}) == 1.0
    assert parsed.value("metric_name_total", {"req1": "1", "req2": "3"}) == 1.0
    assert parsed.value("metric_name_total", {"req1": "4", "req2": "5"}) == 1.0


def test_partial_labels_per_system(backend_name: str) -> None:
    cache_hit_count_total = Counter(
        "cache_hit_count_total", "number of time the cache got it", ["system", "origin"]
    )
    system_a = cache_hit_count_total.labels({"system": "a"})
    system_b = cache_hit_count_total.labels({"system": "b"})
    system_a.labels({"origin": "function_a"}).inc()
    system_a.labels({"origin": "function_b"}).inc()
    system_b.labels({"origin": "function_a"}).inc()
    parsed = text_scrape()
    for system, origin in (("a", "function_a"), ("a", "function_b"), ("b", "function_a")):
        labels = {"system": system, "origin": origin}
        assert parsed.value("cache_hit_count_total", labels) == 1.0
    assert len([n for n, _ in parsed.samples if n == "cache_hit_count_total"]) == 3


def test_labels_with_an_empty_dict_returns_the_same_instance() -> None:
    metric = Counter("metric_name", "desc", required_labels=["a"])
    partial = metric.labels({})
    assert partial is metric
    unlabelled = Counter("other", "desc")
    assert unlabelled.labels({}) is unlabelled


def test_default_labels(backend_name: str) -> None:
    my_metric = Counter(
        "metric_name", "desc", required_labels=["req1", "req2"], default_labels={"req2": "me_set!"}
    )
    my_metric.labels({"req1": "1"}).inc()
    my_metric.labels({"req1": "1", "req2": "2"}).inc(2)
    parsed = text_scrape()
    assert parsed.value("metric_name_total", {"req1": "1", "req2": "me_set!"}) == 1.0
    assert parsed.value("metric_name_total", {"req1": "1", "req2": "2"}) == 2.0


def test_default_labels_observed_directly_or_overridden(backend_name: str) -> None:
    http_request_duration_seconds = Histogram(
        "http_request_duration_seconds",
        "documenting the metric..",
        required_labels=["service"],
        default_labels={"service": "main_service"},
    )
    http_request_duration_seconds.observe(1)
    side = http_request_duration_seconds.labels({"service": "side_service"})
    side.observe(2)
    parsed = text_scrape()
    assert parsed.value("http_request_duration_seconds_sum", {"service": "main_service"}) == 1.0
    assert parsed.value("http_request_duration_seconds_sum", {"service": "side_service"}) == 2.0


@pytest.mark.parametrize(
    "define",
    [
        lambda: Counter("c", "d", required_labels=["__private"]),
        lambda: Counter("c", "d", required_labels=["microµ"]),
        lambda: Histogram("h", "d", required_labels=["le"]),
        lambda: Counter("c", "d", default_labels={"bob": "x"}),
        lambda: Counter("c", "d", required_labels=["bob"], default_labels={"bobby": "x"}),
    ],
    ids=["reserved", "invalid", "le-on-histogram", "default-without-labels", "unknown-default"],
)
def test_label_mistakes_at_definition_are_label_validation_exceptions(define: object) -> None:
    with pytest.raises(LabelValidationException):
        define()  # type: ignore[operator]


def test_label_mistakes_when_recording_are_label_validation_exceptions() -> None:
    unlabelled = Counter("c", "d")
    labelled = Counter("l", "d", required_labels=["a", "b"])
    with pytest.raises(LabelValidationException):
        unlabelled.labels({"a": "1"})
    with pytest.raises(LabelValidationException):
        labelled.labels({"a": "1", "c": "2"})
