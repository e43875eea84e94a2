"""Turning a registry into the text Prometheus scrapes, and serving it.

Two formats, both pure functions of a registry:

* :func:`generate_metrics`: the Prometheus text format 0.0.4
  (:data:`PROMETHEUS_CONTENT_TYPE`), which every Prometheus understands;
* :func:`generate_openmetrics`: OpenMetrics 1.0 (:data:`OPENMETRICS_CONTENT_TYPE`), which
  adds exemplars, units, info and state-set types, and ends with ``# EOF``.

:func:`expose` picks the format from an ``Accept`` header, filters by ``name[]`` and
gzips when asked: it is what a ``/metrics`` view calls. :func:`make_wsgi_app` and
:func:`start_http_server` serve it without any web framework::

    from pytheus.exposition import start_http_server

    start_http_server(8000)  # http://127.0.0.1:8000/metrics
"""

from __future__ import annotations

import functools
import gzip
import math
import os
import socket
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from functools import partial
from operator import attrgetter
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from pytheus.exceptions import BackendUnavailableError, ConfigurationError
from pytheus.gcpause import gc_paused
from pytheus.naming import sample_name
from pytheus.registry import REGISTRY
from pytheus.samples import (
    Exemplar,
    HistogramRun,
    LabelSet,
    MetricFamily,
    Sample,
    SeriesRun,
    format_float,
    replace_surrogates,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from pytheus.registry import Registry

__all__ = [
    "COUNTER_NAMES",
    "ENV_COUNTER_NAMES",
    "OPENMETRICS_CONTENT_TYPE",
    "PROMETHEUS_CONTENT_TYPE",
    "Exposition",
    "choose_format",
    "expose",
    "generate_metrics",
    "generate_openmetrics",
    "make_wsgi_app",
    "set_counter_names",
    "start_http_server",
]

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"

# Header parsing is bounded: a scraper sends a few short entries, anything longer is
# noise or an attack, and must not cost more than a normal scrape.
_MAX_HEADER_CHARS = 4096
_MAX_HEADER_ENTRIES = 32

_INF = math.inf

# Types the text format 0.0.4 lacks are exposed as the closest one it has.
_TEXT_TYPES = {"info": "gauge", "stateset": "gauge", "unknown": "untyped"}


def _escape_help_text(text: str) -> str:
    text = replace_surrogates(text)
    if "\\" in text or "\n" in text:
        return text.replace("\\", "\\\\").replace("\n", "\\n")
    return text


def _escape_help_openmetrics(text: str) -> str:
    text = replace_surrogates(text)
    if "\\" in text or "\n" in text or '"' in text:
        return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return text


def _labels_text(labels: Mapping[str, str]) -> str:
    if type(labels) is LabelSet:
        return labels.text
    return LabelSet.of(labels).text


def _format_value(value: float) -> str:
    # The common case first: a finite float formats with repr().
    if type(value) is float and value - value == 0.0:
        return repr(value)
    return format_float(value)


COUNTER_NAMES = ("total", "as_given")
ENV_COUNTER_NAMES = "PYTHEUS_COUNTER_NAMES"


class _Naming:
    """How the text format names counters; see :func:`set_counter_names`."""

    as_given = False


_naming = _Naming()


def set_counter_names(mode: str) -> None:
    """Choose the counter names of the text format 0.0.4 (OpenMetrics always uses ``_total``).

    ``"total"`` (the default): every counter's samples end in ``_total``, the Prometheus
    convention: ``Counter("page_hits", ...)`` is scraped as ``page_hits_total``.
    ``"as_given"``: a counter is scraped under exactly the name it was defined with, as
    pytheus 0.6.1 did (``page_hits``; ``page_hits_total`` stays ``page_hits_total``), so
    that dashboards and alerts written for pytheus 0.6.1 keep working. Also set by the
    ``PYTHEUS_COUNTER_NAMES`` environment variable, read at import.
    """
    if mode not in COUNTER_NAMES:
        raise ConfigurationError(
            f"Counter names must be one of {list(COUNTER_NAMES)}, got {mode!r}: 'total' "
            "adds _total to every counter, 'as_given' keeps the names as defined."
        )
    _naming.as_given = mode == "as_given"


if os.environ.get(ENV_COUNTER_NAMES):
    set_counter_names(os.environ[ENV_COUNTER_NAMES])


def _text_lines(samples: Iterable[Sample], rename: tuple[str, str] | None) -> str:
    """The text format's lines of ``samples``; ``rename``: (name, as given) of a counter
    whose samples are shown as given (see :func:`set_counter_names`)."""
    return "".join(_text_line_list(samples, rename))


def _text_line_list(samples: Iterable[Sample], rename: tuple[str, str] | None) -> list[str]:
    """The line of each of ``samples``, as :func:`_text_lines`."""
    out: list[str] = []
    append = out.append
    for given, labels, value, timestamp, _ in samples:
        # Inlined label and value formatting: this loop runs once per series.
        name_of_sample = rename[1] if rename is not None and given == rename[0] else given
        text = labels.text if type(labels) is LabelSet else _labels_text(labels)
        number = (
            repr(value) if type(value) is float and value - value == 0.0 else format_float(value)
        )
        if timestamp is not None:
            number = f"{number} {int(timestamp * 1000)}"
        if text:
            append(f"{name_of_sample}{{{text}}} {number}\n")
        else:
            append(f"{name_of_sample} {number}\n")
    return out


def _number(value: float) -> str:
    # As the line functions inline it: repr for a finite float, else format_float.
    return repr(value) if type(value) is float and value - value == 0.0 else format_float(value)


def _histogram_lines(name: str, run: HistogramRun) -> tuple[str, str]:
    """The lines of a histogram series held as a :class:`HistogramRun`, the same in both
    formats: its buckets', and its ``_count`` and ``_sum``. Those its samples would have
    (see ``pytheus.families``), without making them."""
    labels = run.labels.text
    bucket = f"{name}_bucket{{{labels}," if labels else f"{name}_bucket{{"
    cumulative = 0.0
    lines = []
    for le, count in zip(run.le, run.counts, strict=True):
        cumulative += count
        lines.append(f'{bucket}le="{le}"}} {_number(cumulative)}\n')
    braced = f"{{{labels}}}" if labels else ""
    totals = f"{name}_count{braced} {_number(cumulative)}\n{name}_sum{braced} {_number(run.sum)}\n"
    return "".join(lines), totals


def _histogram_text(name: str, run: HistogramRun) -> str:
    buckets, totals = _histogram_lines(name, run)
    return buckets + totals


def _histogram_openmetrics(name: str, run: HistogramRun) -> str:
    """As :func:`_histogram_text`, without the ``_count`` and ``_sum`` that OpenMetrics
    forbids (see :func:`_openmetrics_invalid`)."""
    buckets, totals = _histogram_lines(name, run)
    if any(le.startswith("-") for le in run.le) or not run.sum >= 0:
        return buckets
    return buckets + totals


def _render_runs(
    runs: list[SeriesRun],
    rendering: str,
    lines_of: Callable[[list[Sample]], list[str]],
    histogram_lines: Callable[[HistogramRun], str] | None = None,
) -> list[str]:
    """The text of each run: kept with the run (its attribute ``rendering``) once
    rendered. Those not rendered yet are: a histogram's held as a :class:`HistogramRun`
    by ``histogram_lines``, the others all in one call of ``lines_of``, which returns a
    line (or "") per sample."""
    kept = attrgetter(rendering)
    missing = [run for run in runs if kept(run) is None]
    if missing and histogram_lines is not None:
        others = []
        for run in missing:
            if run.histogram is not None:
                setattr(run, rendering, histogram_lines(run.histogram))
            else:
                others.append(run)
        missing = others
    if missing:
        lines = lines_of([sample for run in missing for sample in run.samples])
        start = 0
        for run in missing:
            end = start + run.size
            setattr(run, rendering, "".join(lines[start:end]))
            start = end
    texts: list[str] = list(map(kept, runs))
    return texts


_Renderer = Callable[[Iterable[MetricFamily]], str]


def _without_gc_pauses(render: _Renderer) -> _Renderer:
    """Render with the cyclic garbage collector paused (:mod:`pytheus.gcpause`): the
    families are collected first, with it on (a collector may wait on I/O), then
    rendered, a few strings and lists per sample, with it off."""

    @functools.wraps(render)
    def rendered(families: Iterable[MetricFamily]) -> str:
        collected = families if isinstance(families, list) else list(families)
        with gc_paused():
            return render(collected)

    return rendered


@_without_gc_pauses
def _render_text(families: Iterable[MetricFamily]) -> str:
    out: list[str] = []
    append = out.append
    as_given = _naming.as_given
    for family in families:
        # The text format names a counter (an info) after its samples: x_total (x_info).
        name = sample_name(family.name, family.type)
        rename: tuple[str, str] | None = None
        if as_given and family.type == "counter" and family.given_name != name:
            rename = (name, family.given_name)
            name = family.given_name
        kind = _TEXT_TYPES.get(family.type, family.type)
        help_text = _escape_help_text(family.help)
        append(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n")
        if (runs := family.current_runs()) is not None:
            rendering = "text" if rename is None else "text_as_given"
            lines_of = partial(_text_line_list, rename=rename)
            histogram_lines = partial(_histogram_text, family.name)
            out.extend(_render_runs(runs, rendering, lines_of, histogram_lines))
            continue
        created_name = f"{family.name}_created"
        samples = family.samples
        if samples and samples[-1].name == created_name:
            # Families bridged from prometheus_client carry _created samples (always as
            # the last one): the text format shows them as a gauge family of their own,
            # after the family, as prometheus_client does.
            append(_text_lines([s for s in samples if s.name != created_name], rename))
            append(f"# HELP {created_name} {help_text}\n# TYPE {created_name} gauge\n")
            for name_of_sample, labels, value, _, _ in samples:
                if name_of_sample == created_name:
                    text = _labels_text(labels)
                    number = _format_value(value)
                    append(
                        f"{name_of_sample}{{{text}}} {number}\n"
                        if text
                        else f"{name_of_sample} {number}\n"
                    )
        else:
            append(_text_lines(samples, rename))
    return "".join(out)


def _exemplar_text(exemplar: Exemplar) -> str:
    text = f" # {{{_labels_text(exemplar.labels)}}} {_format_value(exemplar.value)}"
    if exemplar.timestamp is not None:
        text += f" {exemplar.timestamp!r}"
    return text


def _openmetrics_invalid(family: MetricFamily, samples: list[Sample]) -> set[str]:
    """The label sets (as text) of the series of ``samples`` whose ``_sum`` and
    ``_count`` OpenMetrics 1.0 forbids, which the text format allows.

    ``_sum`` is counter-like there, so it may not be NaN or negative (after a NaN or a
    negative observation), nor appear when a histogram has negative buckets; ``_count``
    goes with it (quantile values may not be negative either: see
    :func:`_openmetrics_line_list`). Both are optional in OpenMetrics, so leaving them
    out keeps the rest of the series valid.
    """
    sum_name = f"{family.name}_sum"
    negative_buckets = family.type == "histogram" and any(
        s.labels.get("le", "").startswith("-") for s in samples
    )
    return {
        _labels_text(s.labels)
        for s in samples
        if s.name == sum_name and (negative_buckets or not s.value >= 0)
    }


def _openmetrics_lines(family: MetricFamily, samples: list[Sample]) -> str:
    """The OpenMetrics lines of ``samples`` (of ``family``)."""
    return "".join(_openmetrics_line_list(family, samples))


def _openmetrics_line_list(family: MetricFamily, samples: list[Sample]) -> list[str]:
    """The line of each of ``samples``, "" for those OpenMetrics forbids (the ``_sum``
    and ``_count`` of :func:`_openmetrics_invalid`, negative quantile values)."""
    checked = family.type in ("histogram", "summary")
    invalid = _openmetrics_invalid(family, samples) if checked else set()
    sum_name, count_name = f"{family.name}_sum", f"{family.name}_count"
    out: list[str] = []
    append = out.append
    for name, labels, value, timestamp, exemplar in samples:
        # Inlined as in _text_lines: this loop runs once per series.
        text = labels.text if type(labels) is LabelSet else _labels_text(labels)
        if checked and (
            (name == family.name and value < 0)
            or (invalid and name in (sum_name, count_name) and text in invalid)
        ):
            append("")
            continue
        number = (
            repr(value) if type(value) is float and value - value == 0.0 else format_float(value)
        )
        line = f"{name}{{{text}}} {number}" if text else f"{name} {number}"
        if timestamp is not None:
            line += f" {timestamp!r}"
        if exemplar is not None:
            line += _exemplar_text(exemplar)
        append(line + "\n")
    return out


@_without_gc_pauses
def _render_openmetrics(families: Iterable[MetricFamily]) -> str:
    out: list[str] = []
    append = out.append
    for family in families:
        name = family.name
        append(f"# TYPE {name} {family.type}\n")
        if family.unit:
            append(f"# UNIT {name} {family.unit}\n")
        append(f"# HELP {name} {_escape_help_openmetrics(family.help)}\n")
        if (runs := family.current_runs()) is not None:
            # What OpenMetrics leaves out of a series depends on that series' samples
            # only (and its buckets, the family's): the same rendered with any others.
            lines_of = partial(_openmetrics_line_list, family)
            histogram_lines = partial(_histogram_openmetrics, name)
            out.extend(_render_runs(runs, "openmetrics", lines_of, histogram_lines))
        else:
            append(_openmetrics_lines(family, family.samples))
    append("# EOF\n")
    return "".join(out)


def generate_metrics(registry: Registry = REGISTRY, names: Collection[str] | None = None) -> str:
    """Return the registry's metrics in the Prometheus text format 0.0.4.

    ``names`` keeps only the families producing one of those series names.
    """
    return _render_text(registry.collect(names))


def generate_openmetrics(
    registry: Registry = REGISTRY, names: Collection[str] | None = None
) -> str:
    """Return the registry's metrics in the OpenMetrics 1.0 text format."""
    return _render_openmetrics(registry.collect(names))


def _media_ranges(header: str) -> Iterator[tuple[str, dict[str, str]]]:
    """Yield ``(value, params)`` per comma-separated entry of an HTTP header, bounded."""
    for entry in header[:_MAX_HEADER_CHARS].split(",")[:_MAX_HEADER_ENTRIES]:
        value, *raw_params = entry.split(";")
        params = {}
        for p in raw_params:
            key, _, val = p.partition("=")
            params[key.strip().lower()] = val.strip().strip('"')
        yield value.strip().lower(), params


def _quality(params: Mapping[str, str]) -> float:
    try:
        q = float(params.get("q", "1"))
    except ValueError:
        return 0.0
    return q if 0.0 <= q <= 1.0 else 0.0


def choose_format(accept: str | None) -> tuple[Callable[[Iterable[MetricFamily]], str], str]:
    """Pick a renderer and its content type from an ``Accept`` header.

    OpenMetrics is chosen when the client prefers it (as Prometheus does); anything
    else, including no header or a malformed one, gets the text format 0.0.4.
    """
    best_q, best_is_om = 0.0, False
    for value, params in _media_ranges(accept or ""):
        if value == "application/openmetrics-text":
            if params.get("version", "1.0.0") not in ("1.0.0", "0.0.1"):
                continue
            is_om = True
        elif value in ("text/plain", "*/*", "text/*"):
            is_om = False
        else:
            continue
        q = _quality(params)
        if q > best_q or (q == best_q and is_om and q > 0):
            best_q, best_is_om = q, is_om
    if best_is_om:
        return _render_openmetrics, OPENMETRICS_CONTENT_TYPE
    return _render_text, PROMETHEUS_CONTENT_TYPE


def _accepts_gzip(accept_encoding: str | None) -> bool:
    return any(
        value in ("gzip", "x-gzip") and _quality(params) > 0
        for value, params in _media_ranges(accept_encoding or "")
    )


class Exposition(NamedTuple):
    """A rendered scrape: the body and the headers to send with it."""

    body: bytes
    headers: dict[str, str]


def expose(
    registry: Registry = REGISTRY,
    *,
    accept: str | None = None,
    accept_encoding: str | None = None,
    names: Collection[str] | None = None,
) -> Exposition:
    """Render a scrape as a web view should: negotiated format, ``name[]``, gzip.

    Raises :class:`~pytheus.exceptions.BackendUnavailableError` when the backend cannot
    be read; answer that with 503.
    """
    render, content_type = choose_format(accept)
    body = render(registry.collect(names)).encode()
    headers = {"Content-Type": content_type, "Vary": "Accept, Accept-Encoding"}
    if _accepts_gzip(accept_encoding):
        # Level 1: metrics text compresses well even so, and a scrape must stay cheap.
        body = gzip.compress(body, compresslevel=1, mtime=0)
        headers["Content-Encoding"] = "gzip"
    headers["Content-Length"] = str(len(body))
    return Exposition(body, headers)


def make_wsgi_app(registry: Registry = REGISTRY) -> WSGIApplication:
    """A WSGI application that serves the registry on any path (GET and HEAD)."""

    def metrics_app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            start_response(
                "405 Method Not Allowed",
                [("Allow", "GET, HEAD"), ("Content-Type", "text/plain; charset=utf-8")],
            )
            return [b"Only GET and HEAD are allowed.\n"]
        query = parse_qs(environ.get("QUERY_STRING", ""))
        names = query.get("name[]")
        try:
            result = expose(
                registry,
                accept=environ.get("HTTP_ACCEPT"),
                accept_encoding=environ.get("HTTP_ACCEPT_ENCODING"),
                names=names,
            )
        except BackendUnavailableError as exc:
            start_response(
                "503 Service Unavailable",
                [("Content-Type", "text/plain; charset=utf-8"), ("Retry-After", "5")],
            )
            return [f"Metrics are unavailable: {exc}\n".encode()]
        start_response("200 OK", list(result.headers.items()))
        return [] if method == "HEAD" else [result.body]

    return metrics_app


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds would flood stderr; stay quiet."""


def start_http_server(
    port: int, addr: str = "127.0.0.1", registry: Registry = REGISTRY
) -> tuple[WSGIServer, threading.Thread]:
    """Serve the registry over HTTP from a daemon thread; returns the server and thread.

    Binds to loopback by default: pass ``addr="0.0.0.0"`` (or ``"::"``) deliberately to
    expose metrics to other hosts. ``port=0`` picks a free port
    (``server.server_port`` tells which).
    """

    class Server(_ThreadingWSGIServer):
        address_family = socket.AF_INET6 if ":" in addr else socket.AF_INET

    server = make_server(
        addr, port, make_wsgi_app(registry), server_class=Server, handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, name="pytheus-http", daemon=True)
    thread.start()
    return server, thread
