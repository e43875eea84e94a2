"""Property-based tests: whatever the label values, help texts and numbers, both formats parse
back to exactly what was recorded.

promtool is slow to start (tens of milliseconds), so each test collects its examples and
checks them with one promtool run at the end.
"""

from __future__ import annotations

import math
import re

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pytheus.exposition import generate_metrics, generate_openmetrics
from pytheus.metrics import Counter, Gauge, Histogram
from pytheus.registry import CollectorRegistry
from tests.core.helpers import SampleKey, parse_openmetrics, parse_text, same_value
from tests.servers import promtool_check_metrics

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Label values: any text, with the characters that need escaping made likely.
TRICKY = st.sampled_from(
    ['"', "\\", "\n", "\\n", '\\"', "\r", "\t", "é", "日本", "🚀", "\u2028", " "]
)
LABEL_VALUES = st.lists(TRICKY, max_size=6).map("".join) | st.text(max_size=30)
# Lower case: promtool's linter wants snake_case label names.
# Not "le" or "quantile" either: the label a histogram's (a summary's) samples add, which
# promtool's lint refuses on any other type (a run drew "le" once, and failed).
LABEL_NAME = st.from_regex(r"[a-z_][a-z0-9_]{0,15}", fullmatch=True).filter(
    lambda n: not n.startswith("__") and n not in {"le", "quantile"}
)


def _render_and_parse(
    registry: CollectorRegistry,
) -> tuple[str, dict[SampleKey, float], dict[SampleKey, float]]:
    text = generate_metrics(registry)
    om = generate_openmetrics(registry)
    return text, parse_text(text).samples, parse_openmetrics(om).samples


def test_label_values_round_trip() -> None:
    batch = CollectorRegistry()
    batch_gauge = Gauge("batch", "All values seen.", required_labels=["v"], registry=batch)

    @SETTINGS
    @given(values=st.lists(LABEL_VALUES, min_size=1, max_size=5, unique=True))
    @example(values=['a"b\\c\nd', "", "\\n", "🚀 ünï"])
    def check(values: list[str]) -> None:
        registry = CollectorRegistry()
        g = Gauge("g", "H.", required_labels=["v", "w"], registry=registry)
        for i, v in enumerate(values):
            g.labels(v=v, w="fixed").set(i)
            batch_gauge.labels(v=v).set(i)
        _, text, om = _render_and_parse(registry)
        expected = {
            ("g", frozenset({("v", v), ("w", "fixed")})): float(i) for i, v in enumerate(values)
        }
        assert text == expected
        assert om == expected

    check()
    assert len(batch_gauge.children()) >= 100  # many examples ran
    text = generate_metrics(batch)
    promtool_check_metrics(text)
    assert len(parse_text(text).samples) == len(batch_gauge.children())


def test_help_texts_round_trip() -> None:
    helps: list[str] = []

    @SETTINGS
    @given(help_text=st.lists(TRICKY, max_size=6).map("".join) | st.text(max_size=40))
    @example(help_text='say "hi"\\n\nbye')
    def check(help_text: str) -> None:
        registry = CollectorRegistry()
        Counter("c", help_text, registry=registry).inc()
        text = generate_metrics(registry)
        om = generate_openmetrics(registry)
        got = (parse_text(text).helps["c"], parse_openmetrics(om).helps["c"])
        if help_text == help_text.strip():
            assert got == (help_text, help_text)
        else:
            # Neither format can carry blanks right after the name, and prometheus_client's
            # text parser strips the line's end: only the rest can round-trip.
            assert tuple(h.strip() for h in got) == (help_text.strip(),) * 2
        assert text.count("\n") == 3  # no line of the HELP text escaped its line
        helps.append(help_text)

    check()
    assert len(helps) >= 50
    batch = CollectorRegistry()
    for i, help_text in enumerate(helps):
        # promtool lints a blank HELP as missing; those are checked by the parsers above.
        Gauge(f"g{i}", help_text if help_text.strip() else "-", registry=batch).set(i)
    promtool_check_metrics(generate_metrics(batch))


def test_label_names_and_values_of_many_series() -> None:
    texts: list[str] = []

    @SETTINGS
    @given(
        labels=st.dictionaries(LABEL_NAME, LABEL_VALUES, min_size=1, max_size=4),
        value=st.floats(allow_nan=True, allow_infinity=True),
    )
    def check(labels: dict[str, str], value: float) -> None:
        registry = CollectorRegistry()
        g = Gauge("g", "H.", required_labels=list(labels), registry=registry)
        g.labels(**labels).set(value)
        g.labels(labels).inc(0)  # the same series, as a dict
        text, parsed_text, parsed_om = _render_and_parse(registry)
        key = ("g", frozenset(labels.items()))
        assert set(parsed_text) == set(parsed_om) == {key}
        assert same_value(parsed_text[key], value)
        assert same_value(parsed_om[key], value)
        texts.append(text)

    check()
    assert len(texts) >= 50
    # Concatenated, the families would repeat: give each its own name for promtool.
    batch = "".join(re.sub(r"\bg\b", f"g{i}", t) for i, t in enumerate(texts[:60]))
    promtool_check_metrics(batch)


def test_counter_values_round_trip_exactly() -> None:
    @SETTINGS
    @given(amounts=st.lists(st.floats(min_value=0, max_value=1e300), max_size=20))
    def check(amounts: list[float]) -> None:
        registry = CollectorRegistry()
        c = Counter("c", "H.", registry=registry)
        for a in amounts:
            c.inc(a)
        value = c.children()[0].snapshot()[0]
        _, text, om = _render_and_parse(registry)
        assert text == om == {("c_total", frozenset()): value}

    check()


def test_histograms_are_valid_for_any_buckets_and_observations() -> None:
    texts: list[str] = []

    @SETTINGS
    @given(
        buckets=st.lists(
            st.floats(min_value=0, max_value=1e9, allow_subnormal=False),
            min_size=1,
            max_size=8,
            unique=True,
        ).map(sorted),
        observations=st.lists(st.floats(min_value=0, max_value=1e12), max_size=30),
    )
    def check(buckets: list[float], observations: list[float]) -> None:
        registry = CollectorRegistry()
        h = Histogram("h", "H.", buckets=buckets, registry=registry)
        for o in observations:
            h.observe(o)
        text, parsed_text, parsed_om = _render_and_parse(registry)
        assert parsed_text == parsed_om
        bounds = [*buckets, math.inf]
        cumulative = {
            float(dict(labels)["le"]): value
            for (name, labels), value in parsed_om.items()
            if name == "h_bucket"
        }
        assert list(cumulative) == bounds  # every bound once, in order
        for bound, value in cumulative.items():
            assert value == sum(1 for o in observations if o <= bound)
        assert parsed_om[("h_count", frozenset())] == len(observations)
        texts.append(text)

    check()
    assert len(texts) >= 50
    batch = "".join(
        re.sub(r"\bh(_bucket|_sum|_count)?\b", rf"h{i}\1", t) for i, t in enumerate(texts[:60])
    )
    promtool_check_metrics(batch)
