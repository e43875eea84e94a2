"""Exposition: format negotiation, gzip, name[] filtering, escaping, grouping, numbers."""

from __future__ import annotations

import gc
import gzip
import math
import re
import time
from collections.abc import Callable, Iterator, Mapping

import pytest

from pytheus.definitions import HistogramState, MetricSeries
from pytheus.exposition import (
    OPENMETRICS_CONTENT_TYPE,
    PROMETHEUS_CONTENT_TYPE,
    choose_format,
    expose,
    generate_metrics,
    generate_openmetrics,
)
from pytheus.families import add_samples, build_family, empty_family
from pytheus.metrics import Counter, Enum, Gauge, Histogram, Info, Summary
from pytheus.registry import CollectorRegistry
from pytheus.samples import (
    EMPTY_LABELS,
    Exemplar,
    HistogramRun,
    LabelSet,
    MetricFamily,
    Sample,
    SeriesRun,
    format_float,
)
from tests.core.helpers import Parsed, parse_openmetrics, parse_text
from tests.servers import promtool_check_metrics

Scrape = Callable[..., tuple[Parsed, Parsed]]

PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


def test_content_types() -> None:
    assert PROMETHEUS_CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"
    assert OPENMETRICS_CONTENT_TYPE == "application/openmetrics-text; version=1.0.0; charset=utf-8"


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        (PROMETHEUS_ACCEPT, OPENMETRICS_CONTENT_TYPE),
        ("application/openmetrics-text; version=1.0.0; charset=utf-8", OPENMETRICS_CONTENT_TYPE),
        ("application/openmetrics-text", OPENMETRICS_CONTENT_TYPE),
        ("Application/OpenMetrics-Text;Version=1.0.0", OPENMETRICS_CONTENT_TYPE),
        (
            "text/plain;version=0.0.4;q=0.9,application/openmetrics-text;q=0.5",
            PROMETHEUS_CONTENT_TYPE,
        ),
        ("application/openmetrics-text;version=2.0.0", PROMETHEUS_CONTENT_TYPE),
        ("application/openmetrics-text;q=0", PROMETHEUS_CONTENT_TYPE),
        ("text/plain", PROMETHEUS_CONTENT_TYPE),
        ("text/plain;version=0.0.4", PROMETHEUS_CONTENT_TYPE),
        ("*/*", PROMETHEUS_CONTENT_TYPE),
        ("", PROMETHEUS_CONTENT_TYPE),
        (None, PROMETHEUS_CONTENT_TYPE),
        ("garbage;;;==,,;q=x", PROMETHEUS_CONTENT_TYPE),
        ("application/json", PROMETHEUS_CONTENT_TYPE),
        ("application/openmetrics-text;q=nan", PROMETHEUS_CONTENT_TYPE),
        ("\x00\xff\u2028", PROMETHEUS_CONTENT_TYPE),
    ],
)
def test_choose_format(accept: str | None, content_type: str) -> None:
    render, chosen = choose_format(accept)
    assert chosen == content_type
    out = render([MetricFamily("g", "gauge", "H.").add(1)])
    assert out.endswith("# EOF\n") == (content_type == OPENMETRICS_CONTENT_TYPE)


def test_choose_format_with_huge_headers_is_bounded() -> None:
    huge = "text/plain;q=0.1," * 200_000 + "application/openmetrics-text"
    started = time.perf_counter()
    for _ in range(10):
        _, content_type = choose_format(huge)
        _, content_type2 = choose_format("a" * 5_000_000)
    assert time.perf_counter() - started < 2.0  # bounded, not proportional to the header
    assert content_type == content_type2 == PROMETHEUS_CONTENT_TYPE


def _populate() -> None:
    Counter("requests", "Requests.", required_labels=["code"]).labels(code=200).inc(3)
    h = Histogram("latency_seconds", "Latency.", buckets=[0.1, 1])
    h.observe(0.05)
    h.observe(5)
    Gauge("temperature", "Temp.").set(21.5)
    Summary("size_bytes", "Size.", quantiles=[0.5]).observe(10)
    Info("build", "Build.").info({"version": "1"})
    Enum("phase", "Phase.", states=["a", "b"])


def test_expose_negotiates_and_gzips(registry: CollectorRegistry) -> None:
    _populate()
    plain = expose(registry)
    assert plain.body.decode() == generate_metrics(registry)
    assert plain.headers == {
        "Content-Type": PROMETHEUS_CONTENT_TYPE,
        "Vary": "Accept, Accept-Encoding",
        "Content-Length": str(len(plain.body)),
    }
    om = expose(registry, accept=PROMETHEUS_ACCEPT, accept_encoding="gzip, deflate, br")
    assert om.headers["Content-Type"] == OPENMETRICS_CONTENT_TYPE
    assert om.headers["Content-Encoding"] == "gzip"
    assert om.headers["Content-Length"] == str(len(om.body))
    body = gzip.decompress(om.body).decode()
    assert body == generate_openmetrics(registry)
    parse_openmetrics(body)
    for no_gzip in ("identity", "gzip;q=0", "deflate", "", None):
        result = expose(registry, accept_encoding=no_gzip)
        assert "Content-Encoding" not in result.headers
        parse_text(result.body.decode())
    assert "Content-Encoding" in expose(registry, accept_encoding="x-gzip").headers


def test_gzip_is_deterministic(registry: CollectorRegistry) -> None:
    Gauge("g", "H.").set(1)
    a = expose(registry, accept_encoding="gzip").body
    b = expose(registry, accept_encoding="gzip").body
    assert a == b  # mtime=0: no timestamp in the gzip header


@pytest.mark.parametrize(
    ("names", "families"),
    [
        (["requests_total"], {"requests"}),
        (["requests"], {"requests"}),
        (["latency_seconds_bucket"], {"latency_seconds"}),
        (["latency_seconds_count", "temperature"], {"latency_seconds", "temperature"}),
        (["size_bytes_sum"], {"size_bytes"}),
        (["build_info"], {"build"}),
        (["phase"], {"phase"}),
        (["jobs_queued"], {"jobs_queued"}),
        (["nope"], set()),
        ([], set()),
    ],
)
def test_name_filter(registry: CollectorRegistry, names: list[str], families: set[str]) -> None:
    _populate()

    class Jobs:
        def collect(self) -> Iterator[MetricFamily]:
            yield MetricFamily("jobs_queued", "gauge", "H.").add(1)

    registry.register(Jobs())
    om = parse_openmetrics(generate_openmetrics(registry, names=names))
    assert set(om.types) == families
    text = parse_text(expose(registry, names=names).body.decode())
    assert text.samples == om.samples


def test_help_escaping_in_both_formats(exposition: Scrape) -> None:
    help_text = 'Line one\nline "two" with a \\ backslash and \\n not a newline'
    Gauge("g", help_text).set(1)
    text, om = exposition()
    assert (
        '# HELP g Line one\\nline "two" with a \\\\ backslash and \\\\n not a newline\n'
        in text.text
    )
    assert (
        '# HELP g Line one\\nline \\"two\\" with a \\\\ backslash and \\\\n not a newline\n'
        in om.text
    )
    assert text.helps["g"] == om.helps["g"] == help_text


def test_label_value_escaping(exposition: Scrape) -> None:
    value = 'quote " backslash \\ newline \n tab \t unicode ✓ 🚀'
    Gauge("g", "H.", required_labels=["v"]).labels(v=value).set(1)
    text, om = exposition()
    assert 'g{v="quote \\" backslash \\\\ newline \\n tab \t unicode ✓ 🚀"} 1.0\n' in text.text
    assert text.samples == om.samples == {("g", frozenset({("v", value)})): 1.0}


def test_one_help_and_type_per_family_and_eof_last(registry: CollectorRegistry) -> None:
    _populate()
    g = Gauge("multi", "H.", required_labels=["a"])
    for i in range(5):
        g.labels(a=str(i)).set(i)
    text = generate_metrics(registry)
    om = generate_openmetrics(registry)
    for body, prefix in ((text, ""), (om, "")):
        helps = re.findall(r"^# HELP (\S+)", body, re.M)
        types = re.findall(r"^# TYPE (\S+)", body, re.M)
        assert len(helps) == len(set(helps)) == len(types) == len(set(types)) == 7, prefix
    assert om.endswith("\n# EOF\n")
    assert om.count("# EOF") == 1
    assert "# EOF" not in text
    assert text.endswith("\n")
    # A family's lines are together: names never come back after another family.
    seen: list[str] = []
    for line in text.splitlines():
        family = line.split()[2] if line.startswith("#") else re.split(r"[{ ]", line)[0]
        family = re.sub(r"_(bucket|sum|count)$", "", family)
        if not seen or seen[-1] != family:
            assert family not in seen, family
            seen.append(family)


def test_type_before_samples_help_per_format(registry: CollectorRegistry) -> None:
    Counter("c", "Counts.").inc()
    assert (
        generate_metrics(registry)
        == "# HELP c_total Counts.\n# TYPE c_total counter\nc_total 1.0\n"
    )
    assert generate_openmetrics(registry) == (
        "# TYPE c counter\n# HELP c Counts.\nc_total 1.0\n# EOF\n"
    )


def test_canonical_numbers(exposition: Scrape) -> None:
    h = Histogram("h", "H.", buckets=[0.25, 1, 2.5, 10, 1e6])
    h.observe(3)
    g = Gauge("g", "H.", required_labels=["k"])
    g.labels(k="inf").set(math.inf)
    g.labels(k="-inf").set(-math.inf)
    g.labels(k="int").set(3)
    g.labels(k="tiny").set(1e-300)
    g.labels(k="big").set(1.5e300)
    text, om = exposition()
    for body in (text.text, om.text):
        les = re.findall(r'le="([^"]+)"', body)
        assert les == ["0.25", "1.0", "2.5", "10.0", "1000000.0", "+Inf"]
        assert 'g{k="inf"} +Inf\n' in body
        assert 'g{k="-inf"} -Inf\n' in body
        assert 'g{k="int"} 3.0\n' in body
    for parsed in (text, om):
        assert parsed.value("g", {"k": "tiny"}) == 1e-300
        assert parsed.value("g", {"k": "big"}) == 1.5e300


def test_timestamps_per_format(registry: CollectorRegistry, exposition: Scrape) -> None:
    class Stamped:
        def collect(self) -> Iterator[MetricFamily]:
            family = MetricFamily("last_seen", "gauge", "H.")
            family.add(1, {"a": "x"}, timestamp=1700000000.5)
            yield family

    registry.register(Stamped())
    text, om = exposition()
    assert 'last_seen{a="x"} 1.0 1700000000500\n' in text.text  # milliseconds
    assert 'last_seen{a="x"} 1.0 1700000000.5\n' in om.text  # seconds
    assert text.timestamps[("last_seen", frozenset({("a", "x")}))] == 1700000000.5
    assert float(om.timestamps[("last_seen", frozenset({("a", "x")}))]) == 1700000000.5


def test_custom_family_exemplar_and_unit(registry: CollectorRegistry, exposition: Scrape) -> None:
    class Custom:
        def collect(self) -> Iterator[MetricFamily]:
            family = MetricFamily("bytes_sent_bytes", "counter", "H.", unit="bytes")
            family.add(10, exemplar=Exemplar({"trace_id": "t1"}, 10.0, 1700000000.0))
            yield family

    registry.register(Custom())
    text, om = exposition()
    assert text.value("bytes_sent_bytes_total") == om.value("bytes_sent_bytes_total") == 10
    assert om.units == {"bytes_sent_bytes": "bytes"}
    exemplar = om.exemplars[("bytes_sent_bytes_total", frozenset())]
    assert exemplar.labels == {"trace_id": "t1"}
    assert "trace_id" not in text.text


def test_unknown_type_is_untyped_in_text(registry: CollectorRegistry, exposition: Scrape) -> None:
    class Legacy:
        def collect(self) -> Iterator[MetricFamily]:
            yield MetricFamily("legacy", "unknown", "H.").add(2)

    registry.register(Legacy())
    text, om = exposition()
    assert "# TYPE legacy untyped\n" in text.text
    assert "# TYPE legacy unknown\n" in om.text
    assert text.value("legacy") == om.value("legacy") == 2.0


def test_metric_family_refuses_unknown_types() -> None:
    with pytest.raises(ValueError, match="'gaugehistogram'"):
        MetricFamily("x", "gaugehistogram", "H.")


def test_lone_surrogates_do_not_break_scrapes(registry: CollectorRegistry) -> None:
    """os.fsdecode() of undecodable bytes gives lone surrogates, which have no UTF-8 form;
    one label value must not make every scrape fail to encode."""
    path = b"/tmp/caf\xe9.txt".decode("utf-8", "surrogateescape")
    g = Gauge("files_open", "Open files \udcff.", required_labels=["path"])
    g.labels(path=path).set(1)
    Counter("c", "H.").inc(exemplar={"file": path})
    Gauge("ok", "H.").set(2)
    body = expose(registry).body.decode("utf-8")
    text = parse_text(body)
    assert text.value("files_open", {"path": "/tmp/caf\ufffd.txt"}) == 1.0
    assert text.helps["files_open"] == "Open files \ufffd."
    assert text.value("ok") == 2.0
    om = parse_openmetrics(expose(registry, accept="application/openmetrics-text").body.decode())
    assert om.exemplars[("c_total", frozenset())].labels == {"file": "/tmp/caf\ufffd.txt"}
    promtool_check_metrics(body)


def test_families_without_series_are_valid(exposition: Scrape) -> None:
    """Labelled metrics have no series until labels() is called; HELP and TYPE still show."""
    Counter("c", "H.", required_labels=["a"])
    Histogram("h", "H.", required_labels=["a"])
    Summary("s", "H.", required_labels=["a"], quantiles=[0.5])
    Info("i", "H.", required_labels=["a"])
    Enum("e", "H.", required_labels=["a"], states=["x"])
    text, om = exposition()
    assert text.samples == om.samples == {}
    assert om.types == {
        "c": "counter",
        "h": "histogram",
        "s": "summary",
        "i": "info",
        "e": "stateset",
    }


def test_series_runs_are_rendered_once_and_only_while_they_hold_the_samples() -> None:
    """A family built series by series (the Redis backend's) keeps each series' text with
    its run; samples changed afterwards are rendered from the samples, not the runs."""
    render_text = choose_format(None)[0]
    render_openmetrics = choose_format("application/openmetrics-text")[0]
    family = MetricFamily("jobs", "counter", "Jobs.")
    family.add(1.0, {"queue": "a"})
    run = SeriesRun(list(family.samples))
    family.runs = [run]
    assert render_text([family]).endswith('jobs_total{queue="a"} 1.0\n')
    assert render_openmetrics([family]).endswith('jobs_total{queue="a"} 1.0\n# EOF\n')
    assert run.text == run.openmetrics == 'jobs_total{queue="a"} 1.0\n'
    assert run.text_as_given is None
    run.text = 'jobs_total{queue="a"} 7.0\n'  # kept: not rendered again
    assert render_text([family]).endswith('jobs_total{queue="a"} 7.0\n')
    family.add(2.0, {"queue": "b"})  # the runs no longer hold every sample
    text = render_text([family])
    assert text.endswith('jobs_total{queue="a"} 1.0\njobs_total{queue="b"} 2.0\n')


def test_with_label_each_is_with_label_for_each_value() -> None:
    labels = LabelSet(("path",), ('a"b',))
    first = labels.with_label("le", "1.0")
    each = labels.with_label_each("le", ["1.0", "+Inf"])
    assert each[0] == first
    assert each[1] == labels.with_label("le", "+Inf")
    assert labels.with_label_each("le", ("1.0", "+Inf")) is each  # kept
    assert [ls.text for ls in each] == ['path="a\\"b",le="1.0"', 'path="a\\"b",le="+Inf"']
    assert dict(each[1]) == {"path": 'a"b', "le": "+Inf"}
    assert EMPTY_LABELS.with_label_each("quantile", ["0.5"])[0].text == 'quantile="0.5"'


class _GcLabels(Mapping[str, str]):
    """Labels (not a LabelSet, so rendered through their items) that note whether the
    cyclic GC was on when the exposition read them."""

    def __init__(self, seen: list[bool]) -> None:
        self.seen = seen

    def __getitem__(self, key: str) -> str:
        if key != "queue":
            raise KeyError(key)
        self.seen.append(gc.isenabled())
        return "a"

    def __iter__(self) -> Iterator[str]:
        return iter(["queue"])

    def __len__(self) -> int:
        return 1


class _Watcher:
    """A collector noting whether the cyclic GC was on while it collected, and yielding
    a family whose labels note it while they are rendered."""

    def __init__(self) -> None:
        self.collected: list[bool] = []
        self.rendered: list[bool] = []

    def collect(self) -> Iterator[MetricFamily]:
        self.collected.append(gc.isenabled())
        family = MetricFamily("watched", "gauge", "Noted.")
        family.samples.append(Sample("watched", _GcLabels(self.rendered), 1.0))
        yield family


@pytest.fixture
def gc_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


@pytest.mark.usefixtures("gc_on")
@pytest.mark.parametrize("render", [generate_metrics, generate_openmetrics])
def test_a_scrape_renders_without_gc_pauses_and_collects_with_the_gc_on(
    render: Callable[..., str],
) -> None:
    """A large scrape makes millions of objects in no cycle: the cyclic GC is off while
    the exposition renders. Not while collectors run: one may wait on I/O, and the GC
    must not stay off for the whole application meanwhile."""
    registry = CollectorRegistry()
    watcher = _Watcher()
    registry.register(watcher)
    watcher.collected.clear()
    watcher.rendered.clear()
    assert 'watched{queue="a"} 1.0' in render(registry)
    assert watcher.collected == [True]
    assert watcher.rendered
    assert not any(watcher.rendered)
    assert gc.isenabled()


HISTOGRAM_CASES = [
    # (buckets, label names and values, per-bucket counts (the +Inf one last), sum)
    ((0.1, 1.0), (("path",), ("/a",)), (1.0, 2.0, 0.0), 1.25),
    ((0.1, 1.0), ((), ()), (0.0, 0.0, 3.0), 12.0),  # no labels
    ((0.5,), (("a", "b"), ('q"uote', "back\\slash")), (4.0, 1.0), 0.30000000000000004),
    ((1.0, 2.0), (("path",), ("/nan",)), (1.0, 0.0, 1.0), math.nan),  # OpenMetrics: no _sum
    ((1.0, 2.0), (("path",), ("/neg",)), (2.0, 0.0, 0.0), -3.5),  # ... nor a negative one
    ((-1.0, 0.0, 1.0), (("path",), ("/below",)), (1.0, 1.0, 0.0, 0.0), 0.5),  # negative bucket
    ((1.0,), (("path",), ("/inf",)), (0.0, 1.0), math.inf),
    ((1e-9, 1e21), (("path",), ("/far",)), (1e16, 3.0, 0.0), 1e300),
]


@pytest.mark.parametrize(("buckets", "labels", "counts", "total"), HISTOGRAM_CASES)
def test_a_histogram_run_renders_as_its_samples(
    buckets: tuple[float, ...],
    labels: tuple[tuple[str, ...], tuple[str, ...]],
    counts: tuple[float, ...],
    total: float,
) -> None:
    """The Redis backend hands a histogram series as a HistogramRun, which the exposition
    renders without making its samples: the text is the one its samples render, in both
    formats, and the samples, made when asked for, are the same too."""
    names, values = labels
    registry = CollectorRegistry()
    d = Histogram(
        "h", "Latency.", required_labels=list(names), buckets=buckets, registry=registry
    ).definition
    labelset = LabelSet(names, values)
    state = HistogramState(counts, total)
    from_samples = build_family(MetricSeries(d, [(labelset, state)]))
    le = tuple(format_float(b) for b in d.buckets)

    def made(run: HistogramRun) -> list[Sample]:
        out: list[Sample] = []
        add_samples(d, [(run.labels, HistogramState(run.counts, run.sum))], out)
        return out

    def from_run() -> MetricFamily:
        family = empty_family(d)
        family.of_runs([SeriesRun.of_histogram(HistogramRun(labelset, le, counts, total), made)])
        return family

    for render in (choose_format(None)[0], choose_format("application/openmetrics-text")[0]):
        family = from_run()
        assert render([family]) == render([from_samples])
        assert family._samples is None  # rendered without making them
        assert render([family]) == render([from_samples])  # kept with the run
    family = from_run()
    assert family.samples == from_samples.samples
    assert family.current_runs() is not None
    assert render([family]) == render([from_samples])
    family.add(1.0, {"path": "/other"} if names else None, suffix="_count")
    assert family.current_runs() is None  # the samples changed: rendered from them
