"""Bad input, property-based: whatever a caller passes, pytheus either refuses it with one of
its own errors, or exposes something Prometheus accepts, on both backends.

Each example defines one metric from drawn parts (a name, label names, a help text, buckets,
quantiles, states, a unit), then records drawn operations into it (label values, numbers,
exemplars, info dicts, states). Names and texts mix valid ones with the hard cases: quotes,
backslashes, line feeds, NUL, emoji, lone surrogates, reserved names, strings of 100,000
characters. Numbers mix floats (NaN, +-inf, -0.0, subnormals, the largest double) with ints
past the float range and things that are not numbers at all.

What must hold:

* a refusal is a :class:`~pytheus.exceptions.MetricDefinitionError`, ``LabelError`` or
  ``InvalidValueError`` with a message, never a ``TypeError``, ``OverflowError`` or
  ``AttributeError`` from deep inside;
* a refused operation leaves no trace (a histogram's ``_count`` is the number of accepted
  observations);
* every scrape renders, both formats parse (prometheus_client's text parser and its strict
  OpenMetrics parser), and ``promtool check metrics`` parses the text format. promtool runs
  once per test on the batch of all examples (each example's metrics carry a prefix of
  their own, so the batch has no clashing families), with ``lint=False``: drawn names may
  be valid but unidiomatic (a colon, a gauge ending in ``_total``, an empty help text), which
  promtool's linter reports as style, not as errors.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytheus.exceptions import InvalidValueError, LabelError, MetricDefinitionError
from pytheus.exposition import generate_metrics, generate_openmetrics
from pytheus.metrics import Counter, Enum, Gauge, Histogram, Info, Metric, Summary
from pytheus.registry import CollectorRegistry
from tests.core.helpers import parse_openmetrics, parse_text
from tests.hardening.conftest import LoadRedis
from tests.servers import promtool_check_metrics

# The errors a caller may get for bad input: all PytheusError, all ValueError.
REFUSALS = (MetricDefinitionError, LabelError, InvalidValueError)

# --------------------------------------------------------------------------- strategies

TRICKY_CHARS = st.sampled_from(
    ['"', "\\", "\n", "\r", "\t", "\0", "#", "{", "}", "=", ",", " ", "é", "日本", "🚀",
     "\ud800", "\udfff", "\ufffd", "\u2028", "\x7f", "\\n", '\\"']
)  # fmt: skip
# Any code point, lone surrogates included (hypothesis leaves them out by default).
ANY_CHAR = st.characters(codec=None, exclude_categories=())


def mostly(
    good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any], odds: int = 3
) -> st.SearchStrategy[Any]:
    """``good`` ``odds`` times out of ``odds + 1``: bad parts are drawn, but most examples
    get past the definition and go on to record."""
    return st.integers(0, odds).flatmap(lambda i: bad if i == 0 else good)


# Long strings are rare (one text in ten) and mostly 10,000 characters: prometheus_client's
# parsers read them a character at a time, 0.4 s per series at 100,000.
LONG = st.sampled_from([10_000, 10_000, 100_000]).flatmap(
    lambda n: st.sampled_from(["x", "é", "🚀", '"', "\\"]).map(lambda c: c * n)
)
TEXT = mostly(
    st.lists(TRICKY_CHARS, max_size=6).map("".join) | st.text(ANY_CHAR, max_size=20),
    LONG,
    odds=9,
)
# prometheus_client 0.26's OpenMetrics parser toggles quoting at every '"' of an exemplar,
# escaped or not, and so refuses the valid `# {id="\""} 1.0`; its sample labels are right.
EXEMPLAR_TEXT = TEXT.map(lambda t: t.replace('"', "'"))
VALID_NAME = st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,12}", fullmatch=True)
VALID_LABEL = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,12}", fullmatch=True)
SPECIAL_NAMES = st.sampled_from(
    ["", "__x", "1a", "a-b", "a b", "a:b", "le", "quantile", "pid", "_total", "x_total",
     "x_total_total", "x_info", "_info", "x_created", "x_bucket", "x_count", "x_sum",
     "a\0b", "\ud800", "é", "x" * 1000]
)  # fmt: skip


# Valid names most of the time, so that most examples go on to record something.
BAD_NAMES = st.one_of(SPECIAL_NAMES, st.text(ANY_CHAR, max_size=8))
METRIC_NAMES = mostly(VALID_NAME, BAD_NAMES, odds=5)
LABEL_NAMES = mostly(VALID_LABEL, BAD_NAMES, odds=8)
NOT_NUMBERS = st.sampled_from(
    ["1", "x", "nan", "", None, b"1", 1j, [1], {}, Decimal("1.5"), Decimal("nan"),
     Decimal("1e400")]
)  # fmt: skip
NUMBERS = st.one_of(
    st.floats(),
    st.floats(),  # NaN, infinities, -0.0 and subnormals included
    st.sampled_from([0, -0.0, 5e-324, 1.7976931348623157e308, -1.7976931348623157e308])
    | st.sampled_from([float("nan"), float("inf"), float("-inf"), 2**1023, True]),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.integers(min_value=-5, max_value=5),
    st.fractions(),
    NOT_NUMBERS,
)
KINDS = ("counter", "gauge", "histogram", "summary", "info", "enum")
CLASSES: dict[str, type[Metric[Any]]] = {
    "counter": Counter,
    "gauge": Gauge,
    "histogram": Histogram,
    "summary": Summary,
    "info": Info,
    "enum": Enum,
}


@dataclass
class Case:
    """One drawn metric definition and the operations recorded into it."""

    kind: str
    name: Any
    help: Any
    labelnames: list[Any]
    options: dict[str, Any]
    ops: list[tuple[dict[Any, Any], str, Any, Any]] = field(default_factory=list)


@st.composite
def cases(draw: st.DrawFn) -> Case:
    kind = draw(st.sampled_from(KINDS))
    labelnames = draw(st.lists(LABEL_NAMES, max_size=2))
    options: dict[str, Any] = {}
    if kind != "enum" and draw(st.integers(0, 2)) == 0:
        options["unit"] = draw(
            mostly(st.sampled_from(["seconds", "bytes"]), st.just("total") | LABEL_NAMES)
        )
    if kind == "histogram" and draw(st.booleans()):
        options["buckets"] = draw(
            mostly(
                st.lists(st.floats(allow_nan=False), min_size=1, max_size=6, unique=True).map(
                    sorted
                ),
                st.lists(NUMBERS, max_size=5),
            )
        )
    if kind == "summary" and draw(st.booleans()):
        options["quantiles"] = draw(
            mostly(
                st.lists(st.floats(0, 1), min_size=1, max_size=4, unique=True).map(sorted),
                st.lists(NUMBERS, max_size=3),
            )
        )
        options["max_age_seconds"] = draw(
            mostly(st.sampled_from([600, 1e-300, float("inf")]), st.sampled_from([0, "x", -1]))
        )
        options["age_buckets"] = draw(
            mostly(st.sampled_from([5, 1, 1000]), st.sampled_from([2.0, 0, 10**12, "5"]))
        )
    if kind == "enum":
        options["states"] = draw(
            mostly(st.lists(TEXT, min_size=1, max_size=3), st.sampled_from([[], "abc", 5]))
        )
    case = Case(kind, draw(METRIC_NAMES), draw(TEXT), labelnames, options)
    names = [n for n in labelnames if isinstance(n, str)]
    for _ in range(draw(st.integers(0, 6))):
        labels: dict[Any, Any] = {n: draw(TEXT) for n in names}
        if draw(st.integers(0, 9)) == 0:  # now and then, a label too many or too few
            labels = dict(itertools.islice(labels.items(), 1)) if labels else {"extra": "x"}
        method = {
            "counter": "inc",
            "gauge": draw(st.sampled_from(["inc", "dec", "set"])),
            "histogram": "observe",
            "summary": "observe",
            "info": "info",
            "enum": "state",
        }[kind]
        if kind == "info":
            value: Any = draw(st.dictionaries(LABEL_NAMES, TEXT, max_size=3) | NOT_NUMBERS)
        elif kind == "enum":
            states = options["states"]
            known = states if isinstance(states, list) and states else None
            value = draw(mostly(st.sampled_from(known), TEXT) if known else TEXT)
        else:
            value = draw(NUMBERS)
        exemplar = None
        if kind in ("counter", "histogram") and draw(st.booleans()):
            exemplar = draw(
                st.dictionaries(LABEL_NAMES, EXEMPLAR_TEXT, max_size=2)
                | st.sampled_from([[1], "x"])
            )
        case.ops.append((labels, method, value, exemplar))
    return case


# --------------------------------------------------------------------------- running


@dataclass
class Tally:
    """What the examples of one test did, for the batch check and the final assertions."""

    texts: list[str] = field(default_factory=list)
    defined: int = 0
    refused_definitions: int = 0
    recorded: int = 0
    refused_operations: int = 0
    counter: itertools.count[int] = field(default_factory=itertools.count)


def refused(action: Callable[[], Any]) -> BaseException | None:
    """Run ``action``; return the pytheus error it raised, None if it did not. Any other
    exception fails the test, with the drawn example that caused it."""
    error: BaseException | None = None
    try:
        action()
    except REFUSALS as exc:
        error = exc
    assert error is None or len(str(error)) > 20, f"an error should say what is wrong: {error!r}"
    return error


def run_case(case: Case, tally: Tally) -> None:
    registry = CollectorRegistry(prefix=f"ex{next(tally.counter)}")
    cls = CLASSES[case.kind]
    metric: Metric[Any] | None = None

    def define() -> None:
        nonlocal metric
        metric = cls(case.name, case.help, case.labelnames, registry=registry, **case.options)

    if refused(define) is not None:
        tally.refused_definitions += 1
        assert not registry.collectors(), "a refused metric must not stay registered"
        return
    assert metric is not None
    tally.defined += 1
    accepted_observations = 0
    for labels, method, value, exemplar in case.ops:

        def record(
            labels: Any = labels, method: str = method, value: Any = value, exemplar: Any = exemplar
        ) -> None:
            assert metric is not None
            target: Any = metric.labels(labels) if labels or case.labelnames else metric
            if exemplar is not None:
                getattr(target, method)(value, exemplar=exemplar)
            else:
                getattr(target, method)(value)

        if refused(record) is None:
            tally.recorded += 1
            accepted_observations += method == "observe"
        else:
            tally.refused_operations += 1
    text = generate_metrics(registry)
    om = generate_openmetrics(registry)
    parsed = parse_text(text)
    parse_openmetrics(om)
    if case.kind in ("histogram", "summary"):
        # A refused observation left nothing behind: not a count without its sum.
        count = sum(v for (n, _), v in parsed.samples.items() if n.endswith("_count"))
        assert count == accepted_observations
    tally.texts.append(text)


def check_batch(tally: Tally) -> None:
    assert tally.defined >= 20, f"too few metrics were accepted to mean anything: {tally}"
    assert tally.refused_definitions >= 20, f"too few bad definitions were drawn: {tally}"
    assert tally.recorded >= 20, tally
    assert tally.refused_operations >= 20, tally
    promtool_check_metrics("".join(tally.texts), lint=False)


def explore(tally: Tally) -> Callable[[], None]:
    @settings(settings.get_profile("hardening"))
    @given(case=cases())
    def check(case: Case) -> None:
        run_case(case, tally)

    return check


# --------------------------------------------------------------------------- the tests


@pytest.mark.slow
@pytest.mark.usefixtures("fresh_registry")
def test_bad_input_in_memory() -> None:
    tally = Tally()
    explore(tally)()
    check_batch(tally)


@pytest.mark.slow
def test_bad_input_on_redis(load_redis: LoadRedis) -> None:
    """The same, through Redis: what is recorded is flushed and read back at each scrape,
    so names, label values and help texts go through JSON, Lua and Redis keys."""
    backend = load_redis(flush_interval=60)  # scrapes flush; no background timing
    tally = Tally()
    explore(tally)()
    check_batch(tally)
    status = backend.status()
    assert status["healthy"], status
    assert status["errors"] == 0, status
    assert backend.flush()
