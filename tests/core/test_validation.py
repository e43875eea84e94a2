"""Names and labels are checked where a metric is defined, with errors naming the bad value."""

from __future__ import annotations

import re

import pytest

from pytheus.exceptions import MetricDefinitionError, PytheusError
from pytheus.metrics import Counter, Enum, Gauge, Histogram, Info, Summary
from pytheus.registry import CollectorRegistry


@pytest.mark.parametrize(
    "name", ["1abc", "has-dash", "has space", "", "ünïcode", "a.b", "__reserved", "x{y}"]
)
def test_invalid_metric_names(name: str, registry: CollectorRegistry) -> None:
    with pytest.raises(MetricDefinitionError) as excinfo:
        Counter(name, "Help.")
    assert repr(name) in str(excinfo.value)
    assert registry.collectors() == []


def test_invalid_metric_name_message_explains_the_rule() -> None:
    with pytest.raises(MetricDefinitionError, match=re.escape("[a-zA-Z_:][a-zA-Z0-9_:]*")) as e:
        Gauge("http-requests", "Help.")
    assert "'http_requests'" in str(e.value)  # a suggestion
    with pytest.raises(MetricDefinitionError, match="reserved"):
        Gauge("__x", "Help.")
    with pytest.raises(MetricDefinitionError, match="must be a str"):
        Gauge(42, "Help.")  # type: ignore[arg-type]
    with pytest.raises(MetricDefinitionError, match="description"):
        Gauge("x", None)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["valid_name", "with:colon", "_leading", "a1"])
def test_valid_metric_names(name: str) -> None:
    assert Gauge(name, "Help.").name == name


@pytest.mark.parametrize(
    ("label", "match"),
    [
        ("bad-label", "Invalid label name 'bad-label'"),
        ("1st", "Invalid label name '1st'"),
        ("with:colon", "no colons"),
        ("__internal", "'__internal'.*reserved"),
        ("", "Invalid label name ''"),
    ],
)
def test_invalid_label_names(label: str, match: str) -> None:
    with pytest.raises(MetricDefinitionError, match=match):
        Counter("c", "Help.", required_labels=[label])


def test_reserved_labels_per_type() -> None:
    with pytest.raises(MetricDefinitionError, match="'le' is reserved"):
        Histogram("h", "Help.", required_labels=["path", "le"])
    with pytest.raises(MetricDefinitionError, match="'quantile' is reserved"):
        Summary("s", "Help.", required_labels=["quantile"])
    # Only where the exposition adds them.
    Summary("s2", "Help.", required_labels=["le"])
    Histogram("h2", "Help.", required_labels=["quantile"])


def test_default_labels_must_be_required_labels() -> None:
    with pytest.raises(MetricDefinitionError, match="Default label 'region'") as excinfo:
        Counter("c", "Help.", required_labels=["code"], default_labels={"region": "eu"})
    assert "['code']" in str(excinfo.value)
    with pytest.raises(MetricDefinitionError, match="'region'"):
        Gauge("g", "Help.", default_labels={"region": "eu"})


def test_duplicate_label_names() -> None:
    with pytest.raises(MetricDefinitionError, match="'a' is given twice"):
        Counter("c", "Help.", required_labels=["a", "b", "a"])


def test_labels_given_as_a_single_string() -> None:
    with pytest.raises(MetricDefinitionError, match=re.escape("write ['code']")):
        Counter("c", "Help.", required_labels="code")


def test_bad_definitions_leave_nothing_registered(registry: CollectorRegistry) -> None:
    bad: list[dict[str, object]] = [
        {"required_labels": ["le"]},
        {"buckets": [3, 2]},
        {"default_labels": {"x": "1"}},
    ]
    for kwargs in bad:
        with pytest.raises(MetricDefinitionError):
            Histogram("h", "Help.", **kwargs)  # type: ignore[arg-type]
    assert registry.collectors() == []
    Histogram("h", "Help.")  # the name is still free


def test_definition_errors_are_value_errors_and_pytheus_errors() -> None:
    for call in (
        lambda: Info("i", "Help.", required_labels=["a-b"]),
        lambda: Enum("e", "Help.", states=[]),
        lambda: Summary("s", "Help.", quantiles=[2]),
    ):
        with pytest.raises(PytheusError) as excinfo:
            call()
        assert isinstance(excinfo.value, ValueError)
