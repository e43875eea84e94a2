"""pytheus 0.6.1's pages on the metric types (quickref.md, counter.md, gauge.md,
histogram.md, summary.md), every usage on both backends, asserted on the scrape."""

from __future__ import annotations

import asyncio
import time

import pytest

from pytheus.metrics import Counter, Gauge, Histogram, Summary
from tests.compat.conftest import text_scrape
from tests.core.helpers import Parsed


def _value(name: str, labels: dict[str, str] | None = None) -> float:
    return text_scrape().value(name, labels)


# --------------------------------------------------------------------------- Counter


def test_counter_inc_by_one_and_by_amount(backend_name: str) -> None:
    counter = Counter(name="my_counter_total", description="My description")
    counter.inc()
    counter.inc(7)
    assert _value("my_counter_total") == 8.0


def test_counter_refuses_a_negative_increment(backend_name: str) -> None:
    counter = Counter("cache_hit_total", "number of times the cache got it")
    with pytest.raises(ValueError, match="only go up"):
        counter.inc(-1)
    assert _value("cache_hit_total") == 0.0


def test_count_exceptions_counts_any_exception_and_reraises(backend_name: str) -> None:
    counter = Counter("errors_total", "Errors.")
    with pytest.raises(ValueError, match="boom"), counter.count_exceptions():
        raise ValueError("boom")
    assert _value("errors_total") == 1.0


def test_count_exceptions_with_a_tuple_counts_only_those(backend_name: str) -> None:
    counter = Counter("errors_total", "Errors.")
    watched = (IndexError, ValueError)
    with pytest.raises(ValueError, match="boom"), counter.count_exceptions(watched):
        raise ValueError("boom")
    with pytest.raises(KeyError), counter.count_exceptions(watched):
        raise KeyError
    assert _value("errors_total") == 1.0


def test_counter_as_decorator_counts_exceptions(backend_name: str) -> None:
    counter = Counter("errors_total", "Errors.")

    @counter
    def test() -> None:
        raise ValueError("boom")

    @counter
    def fine() -> int:
        return 3

    with pytest.raises(ValueError, match="boom"):
        test()
    assert fine() == 3
    assert _value("errors_total") == 1.0


def test_counter_as_decorator_with_exceptions(backend_name: str) -> None:
    counter = Counter("errors_total", "Errors.")

    @counter(exceptions=(IndexError, ValueError))
    def value_error() -> None:
        raise ValueError("boom")

    @counter(exceptions=(IndexError, ValueError))
    def key_error() -> None:
        raise KeyError

    with pytest.raises(ValueError, match="boom"):
        value_error()
    with pytest.raises(KeyError):
        key_error()
    assert _value("errors_total") == 1.0


def test_counter_decorator_on_async_functions(backend_name: str) -> None:
    counter = Counter("errors_total", "Errors.")

    @counter
    async def fails() -> None:
        await asyncio.sleep(0)
        raise ValueError("boom")

    @counter(exceptions=IndexError)
    async def other() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        asyncio.run(fails())
    with pytest.raises(ValueError, match="boom"):
        asyncio.run(other())
    assert _value("errors_total") == 1.0


def test_decorator_on_a_labelled_child(backend_name: str) -> None:
    counter = Counter("errors_total", "Errors.", required_labels=["view"])

    @counter.labels(view="home")
    def home() -> None:
        raise RuntimeError

    with pytest.raises(RuntimeError):
        home()
    assert _value("errors_total", {"view": "home"}) == 1.0


# --------------------------------------------------------------------------- Gauge


def test_gauge_inc_dec_set(backend_name: str) -> None:
    gauge = Gauge(name="my_gauge", description="My description")
    gauge.inc()
    gauge.inc(7)
    gauge.dec()
    gauge.dec(2)
    assert _value("my_gauge") == 5.0
    gauge.set(7)
    assert _value("my_gauge") == 7.0


def test_gauge_set_to_current_time(backend_name: str) -> None:
    gauge = Gauge("room_temperature", "temperature in the living room")
    before = time.time()
    gauge.set_to_current_time()
    assert before <= _value("room_temperature") <= time.time()


def test_gauge_track_inprogress_and_time(backend_name: str) -> None:
    gauge = Gauge("work", "Work.")
    with gauge.track_inprogress():
        assert _value("work") == 1.0
    assert _value("work") == 0.0
    with gauge.time():
        time.sleep(0.01)
    assert _value("work") >= 0.01


def test_gauge_as_decorator_times_the_call(backend_name: str) -> None:
    gauge = Gauge("duration_seconds", "Last duration.")

    @gauge
    def do_something() -> str:
        time.sleep(0.01)
        return "done"

    assert do_something() == "done"
    assert _value("duration_seconds") >= 0.01


def test_gauge_decorator_track_inprogress(backend_name: str) -> None:
    gauge = Gauge("in_progress", "Calls in progress.")
    seen: list[float] = []

    @gauge(track_inprogress=True)
    def do_something() -> None:
        seen.append(_value("in_progress"))

    @gauge(track_inprogress=True)
    async def do_async() -> None:
        seen.append(_value("in_progress"))

    do_something()
    asyncio.run(do_async())
    assert seen == [1.0, 1.0]
    assert _value("in_progress") == 0.0


def test_gauge_decorator_track_inprogress_false_times(backend_name: str) -> None:
    gauge = Gauge("duration_seconds", "Last duration.")

    @gauge(track_inprogress=False)
    def do_something() -> None:
        time.sleep(0.01)

    do_something()
    assert _value("duration_seconds") >= 0.01


# --------------------------------------------------------------------------- Histogram


def test_histogram_buckets_observe_and_inf(backend_name: str) -> None:
    histogram = Histogram(name="my_histogram", description="My description", buckets=(0.2, 1, 3))
    histogram.observe(0.4)
    histogram.observe(5)
    parsed = text_scrape()
    assert parsed.value("my_histogram_bucket", {"le": "0.2"}) == 0.0
    assert parsed.value("my_histogram_bucket", {"le": "1.0"}) == 1.0
    assert parsed.value("my_histogram_bucket", {"le": "3.0"}) == 1.0
    assert parsed.value("my_histogram_bucket", {"le": "+Inf"}) == 2.0
    assert parsed.value("my_histogram_sum") == 5.4
    assert parsed.value("my_histogram_count") == 2.0


def test_histogram_time_and_decorator(backend_name: str) -> None:
    histogram = Histogram("http_request_duration_seconds", "My description")
    with histogram.time():
        pass

    @histogram
    def do_something() -> None:
        time.sleep(0.02)

    @histogram
    async def do_async() -> None:
        await asyncio.sleep(0.02)

    do_something()
    asyncio.run(do_async())
    parsed = text_scrape()
    assert parsed.value("http_request_duration_seconds_count") == 3.0
    assert parsed.value("http_request_duration_seconds_sum") >= 0.04


def test_histogram_observes_also_when_the_decorated_function_raises(backend_name: str) -> None:
    histogram = Histogram("duration_seconds", "Durations.")

    @histogram
    def fails() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        fails()
    assert _value("duration_seconds_count") == 1.0


# --------------------------------------------------------------------------- Summary


def test_summary_observe_time_and_decorator(backend_name: str) -> None:
    summary = Summary(name="my_summary", description="My description")
    summary.observe(0.4)
    with summary.time():
        pass

    @summary
    def do_something() -> None:
        pass

    do_something()
    parsed: Parsed = text_scrape()
    assert parsed.value("my_summary_count") == 3.0
    assert parsed.value("my_summary_sum") >= 0.4


def test_count_exceptions_keyword_and_a_mistake_in_it() -> None:
    counter = Counter("errors_total", "Errors.")
    with pytest.raises(KeyError), counter.count_exceptions(exceptions=(KeyError,)):
        raise KeyError("k")
    # A mistake in the argument fails where it is written, not when an exception happens.
    with pytest.raises(TypeError, match="exception class"):
        counter.count_exceptions("KeyError")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="exception class"):
        counter(exceptions=(KeyError, "ValueError"))  # type: ignore[arg-type]
    assert _value("errors_total") == 1.0
