"""The on-call overview at the top of the admin dashboard, worked out from the families.

Four questions answered without reading a single table: how much traffic, how many
server errors, how slow, and where. From django_pytheus's own metrics (names in
:class:`AppNames`), over the page's time window when there is one (else since start):

* requests per second, the share of 5xx responses and the p99 latency of all views,
  each with a sparkline of the last minutes (:class:`Trend`);
* the views with the highest p99, and with the most database queries per request
  (the N+1 finder);
* the cache hit ratio per cache, and unhandled exceptions by type.

Every figure links to its family. Pure: no Django, the links are made by a function
the page passes in.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from django_pytheus import formatting as fmt
from django_pytheus.dashboard import FamilyView, Series, pretty_label, quantile_estimate
from django_pytheus.formatting import Unit
from django_pytheus.history import Window

__all__ = ["AppNames", "Figure", "Overview", "Ranked", "Spark", "Trend", "build_overview"]

#: How many views each top list shows.
TOP = 5
#: How far back the sparklines go.
TREND_SECONDS = 15 * 60.0

NAN = math.nan
SECONDS = Unit("seconds")
QUERIES = Unit("plain", "queries", whole=True)
WHOLE = Unit("plain", whole=True)
RATIO = Unit("ratio")

# A link to a family's page: (family name, search, sort) -> URL.
LinkMaker = Callable[[str, str, str], str]


@dataclass(frozen=True)
class AppNames:
    """The family names of django_pytheus's metrics (with the site's namespace)."""

    requests: str = "django_http_requests"
    duration: str = "django_http_request_duration_seconds"
    queries: str = "django_db_queries_per_request"
    cache_hits: str = "django_cache_hits"
    cache_misses: str = "django_cache_misses"
    exceptions: str = "django_http_exceptions"
    every: frozenset[str] = frozenset()  # all of django_pytheus's families

    def all(self) -> tuple[str, ...]:
        return (
            self.requests,
            self.duration,
            self.queries,
            self.cache_hits,
            self.cache_misses,
            self.exceptions,
        )


@dataclass
class Spark:
    """A sparkline: an SVG polyline in a ``width`` x ``height`` box, and its summary
    in words (the chart's accessible name and tooltip)."""

    points: str
    summary: str
    width: int = 120
    height: int = 28


@dataclass
class Figure:
    """One headline number: ``text`` with what it counts in ``title``."""

    id: str
    label: str
    text: str
    href: str
    title: str = ""
    detail: str = ""  # "last 58 s", "since start", "no requests in the last 58 s"
    bad: bool = False  # draws the eye (server errors, a backend that fails)
    spark: Spark | None = None
    stale: str = ""  # "stale" or "this process only": from values not current (outage)


@dataclass
class Ranked:
    """One line of a top list: a view (or type, or cache) and its figures."""

    name: str
    text: str
    href: str
    title: str = ""
    extra: str = ""  # a second figure: its traffic, its total
    raw: str = ""  # the label value, when ``name`` prettified it


@dataclass
class Overview:
    """What the overview shows; every text is final (formatted once, here)."""

    window_text: str
    figures: list[Figure] = field(default_factory=list)
    slow: list[Ranked] = field(default_factory=list)
    queries: list[Ranked] = field(default_factory=list)
    exceptions: list[Ranked] = field(default_factory=list)
    caches: list[Ranked] = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)  # family role -> its page
    windows: dict[str, str] = field(default_factory=dict)  # list -> what it is over
    missing: list[str] = field(default_factory=list)  # families the site does not record


# --------------------------------------------------------------------------- trend


class Trend:
    """Points of the headline figures over the last :data:`TREND_SECONDS`, one per
    reading: each is the rate between a reading and the one before it. Thread-safe."""

    def __init__(self, seconds: float = TREND_SECONDS, limit: int = 600) -> None:
        self.seconds = seconds
        self._points: deque[tuple[float, dict[str, float]]] = deque(maxlen=limit)
        self._lock = threading.Lock()

    def add(self, when: float, values: Mapping[str, float]) -> None:
        with self._lock:
            if self._points and self._points[-1][0] >= when:
                return  # a reading already counted (two requests read the same one)
            self._points.append((when, dict(values)))
            while self._points and self._points[0][0] < when - self.seconds:
                self._points.popleft()

    def series(self, key: str) -> list[tuple[float, float]]:
        with self._lock:
            return [(t, v[key]) for t, v in self._points if v.get(key, NAN) == v.get(key)]

    def clear(self) -> None:
        with self._lock:
            self._points.clear()


def spark(points: Sequence[tuple[float, float]], now: float, what: str, show: Callable[[float], str]
          ) -> Spark | None:  # fmt: skip
    """A sparkline of ``points`` (time, value) over the last :data:`TREND_SECONDS`."""
    if len(points) < 2:
        return None
    width, height = 120, 28
    # The line spans what there is (at least a minute), up to the last 15 minutes.
    start = max(min(points[0][0], now - 60.0), now - TREND_SECONDS)
    values = [v for _, v in points]
    low, high = min(values), max(values)
    scale = high or 1.0
    coords = []
    for t, v in points:
        x = max(t - start, 0.0) / max(now - start, 1.0) * width
        y = height - 1 - (v / scale) * (height - 2)
        coords.append(f"{x:.1f},{y:.1f}")
    summary = (
        f"{what} over the last {fmt.duration(now - points[0][0])}: from {show(low)} "
        f"to {show(high)}, now {show(values[-1])}"
    )
    return Spark(" ".join(coords), summary, width, height)


# --------------------------------------------------------------------------- arithmetic


def _vectors(family: FamilyView) -> Iterator[tuple[Series, list[float]]]:
    """Each series' numbers over the window (increase), or since start without one."""
    window = family.window
    if window is None:
        return
    windowed = window.span > 0
    for s in family.series:
        vector = window.increase(s.key) if windowed else window.current.vector(s.key)
        if vector is not None:
            yield s, vector


def _add(into: dict[str, list[float]], key: str, vector: Sequence[float]) -> None:
    total = into.get(key)
    if total is None:
        into[key] = list(vector)
    else:
        for i, v in enumerate(vector):
            total[i] += v


def _grouped(family: FamilyView, label: str) -> dict[str, list[float]]:
    """The family's vectors summed by the value of ``label`` (``""`` sums them all)."""
    index = family.labelnames.index(label) if label in family.labelnames else -1
    out: dict[str, list[float]] = {}
    for s, vector in _vectors(family):
        _add(out, s.labels[index] if index >= 0 else "", vector)
    return out


def _quantile(
    family: FamilyView, vector: Sequence[float], q: float, unit: Unit | None = None
) -> tuple[float, str, str]:
    """(PromQL's value, the bucket as text, a tooltip) of a histogram vector."""
    bounds = family.bounds
    n = len(bounds)
    estimate = quantile_estimate(q, list(zip(bounds, vector[:n], strict=True)))
    unit = unit or family.value_unit
    if estimate.value != estimate.value:
        return NAN, fmt.NO_DATA, "No observations"
    text = fmt.value_range(estimate.lower, estimate.upper, unit)
    title = f"In the bucket {text}; PromQL's histogram_quantile() says {estimate.value:.6g}"
    return estimate.value, text, title


def _span(family: FamilyView | None) -> float:
    window = family.window if family is not None else None
    return window.span if window is not None else 0.0


def _over(family: FamilyView | None) -> str:
    """What a figure is over: ``last 58 s``, or ``since start`` without an earlier
    reading of its family (a family's page reads only that family: the overview's
    families need not all have one)."""
    span = _span(family)
    return f"last {fmt.duration(span)}" if span > 0 else "since start"


# --------------------------------------------------------------------------- overview


def build_overview(
    families: Mapping[str, FamilyView],
    names: AppNames,
    link: LinkMaker,
    *,
    trend: Trend | None = None,
    now: float,
) -> Overview:
    """The overview of ``families`` (by name; those of ``names`` matter), with links
    from ``link`` and sparklines from ``trend``, which gets this reading's point."""
    requests = families.get(names.requests)
    duration = families.get(names.duration)
    queries = families.get(names.queries)
    hits, misses = families.get(names.cache_hits), families.get(names.cache_misses)
    exceptions = families.get(names.exceptions)
    over = _over(requests or duration)
    overview = Overview(window_text=over)
    overview.windows = {
        "slow": _over(duration),
        "queries": _over(queries),
        "exceptions": _over(exceptions),
        "caches": _over(hits),
    }
    overview.missing = [n for n in names.all() if n not in families]
    overview.links = {
        role: link(name, "", "")
        for role, name in (("requests", names.requests), ("duration", names.duration))
        if name in families
    }
    if trend is not None and requests is not None:
        _add_trend_point(trend, requests, duration)
    points = trend.series if trend is not None else (lambda key: [])

    if requests is not None:
        overview.figures += _marked(_request_figures(requests, link, over, points, now), requests)
    if duration is not None:
        latency = _latency_figure(duration, link, _over(duration), points, now)
        overview.figures += _marked([latency], duration)
        overview.slow = _slowest(duration, requests, link)
    if hits is not None and misses is not None:
        figure, overview.caches = _caches(hits, misses, link, _over(hits))
        overview.figures += _marked([figure], hits, misses)
    if queries is not None:
        overview.queries = _query_heavy(queries, link)
    if exceptions is not None:
        overview.exceptions = _exceptions(exceptions, link)
    return overview


def _marked(figures: list[Figure], *families: FamilyView) -> list[Figure]:
    """``figures`` marked as their families are when Redis cannot be read: the last
    values read (stale) or this process's own."""
    for figure in figures:
        if any(f.local_only for f in families):
            figure.stale = "this process only"
        elif any(f.stale_since for f in families):
            figure.stale = "stale"
    return figures


def _add_trend_point(trend: Trend, requests: FamilyView, duration: FamilyView | None) -> None:
    """The point between the previous reading and this one."""
    window = requests.window
    if window is None or not window.earlier:
        return
    step = Window(window.current, window.earlier[-1:])
    span = step.span
    total = errors = 0.0
    status = requests.labelnames.index("status") if "status" in requests.labelnames else -1
    for s in requests.series:
        increase = step.increase(s.key)
        if increase is None:
            continue
        total += increase[0]
        if status >= 0 and s.labels[status].startswith("5"):
            errors += increase[0]
    values = {"requests": total / span, "errors": errors / total if total else NAN, "p99": NAN}
    if duration is not None and duration.window is not None and duration.window.earlier:
        d_step = Window(duration.window.current, duration.window.earlier[-1:])
        summed: dict[str, list[float]] = {}
        for s in duration.series:
            increase = d_step.increase(s.key)
            if increase is not None:
                _add(summed, "", increase)
        if "" in summed:
            values["p99"] = _quantile(duration, summed[""], 0.99)[0]
    trend.add(window.current.time, values)


def _request_figures(
    requests: FamilyView,
    link: LinkMaker,
    over: str,
    points: Callable[[str], list[tuple[float, float]]],
    now: float,
) -> list[Figure]:
    span = _span(requests)
    total = errors = 0.0
    status = requests.labelnames.index("status") if "status" in requests.labelnames else -1
    for s, vector in _vectors(requests):
        total += vector[0]
        if status >= 0 and s.labels[status].startswith("5"):
            errors += vector[0]
    href = link(requests.name, "", "-rate")
    if span > 0:
        rate = Figure(
            "requests",
            "Requests",
            fmt.rate(total / span),
            href,
            f"{fmt.count(total)} requests in the {over}",
            over,
            spark=spark(points("requests"), now, "Requests per second", fmt.rate),
        )
    else:
        rate = Figure("requests", "Requests", fmt.count(total), href, "Since start", over)
    share = errors / total if total else NAN
    errors_figure = Figure(
        "errors",
        "Server errors",
        fmt.number(share, RATIO) if total else fmt.NO_DATA,
        link(requests.name, "", "-rate"),
        f"{fmt.count(errors)} of {fmt.count(total)} responses had a 5xx status ({over})",
        over if total else f"no requests, {over}",
        bad=errors > 0,
        spark=spark(
            points("errors"), now, "Share of 5xx responses", lambda v: fmt.number(v, RATIO)
        ),
    )
    return [rate, errors_figure]


def _latency_figure(
    duration: FamilyView,
    link: LinkMaker,
    over: str,
    points: Callable[[str], list[tuple[float, float]]],
    now: float,
) -> Figure:
    summed = _grouped(duration, "")
    vector = summed.get("")
    value, text, title = _quantile(duration, vector, 0.99) if vector else (NAN, fmt.NO_DATA, "")
    return Figure(
        "latency",
        "p99 latency",
        text,
        link(duration.name, "", "-p99"),
        title or f"No requests, {over}",
        over if value == value else f"no requests, {over}",
        spark=spark(
            points("p99"),
            now,
            "p99 latency (PromQL's estimate)",
            lambda v: fmt.number(v, SECONDS),
        ),
    )


def _slowest(duration: FamilyView, requests: FamilyView | None, link: LinkMaker) -> list[Ranked]:
    """The views with the highest p99 (that had requests), worst first."""
    span = _span(duration)
    n = len(duration.bounds)
    found = []
    for view, vector in _grouped(duration, "view").items():
        if not vector or vector[n - 1] <= 0:
            continue
        value, text, title = _quantile(duration, vector, 0.99)
        extra = fmt.rate(vector[n - 1] / span) if span > 0 else f"{fmt.count(vector[n - 1])} in all"
        found.append((value, vector[n - 1], view, text, title, extra))
    found.sort(key=lambda f: (-f[0], -f[1], f[2]))
    return [
        Ranked(pretty_label(view), text, link(duration.name, view, "-p99"), title, extra, view)
        for _, _, view, text, title, extra in found[:TOP]
    ]


def _query_heavy(queries: FamilyView, link: LinkMaker) -> list[Ranked]:
    """The views making the most queries per request (mean), highest first."""
    n = len(queries.bounds)
    found = []
    for view, vector in _grouped(queries, "view").items():
        count = vector[n - 1] if vector else 0.0
        if count <= 0:
            continue
        mean = vector[n] / count
        _, p99_text, _ = _quantile(queries, vector, 0.99)
        _, p99_short, _ = _quantile(queries, vector, 0.99, WHOLE)
        requests = "request" if count == 1 else "requests"
        title = (
            f"{fmt.number(vector[n], QUERIES)} in {fmt.count(count)} {requests}; "
            f"p99 {p99_text} per request"
        )
        found.append((mean, count, view, title, f"p99 {p99_short}"))
    found.sort(key=lambda f: (-f[0], -f[1], f[2]))
    return [
        Ranked(
            pretty_label(view),
            fmt.number(mean, QUERIES),
            link(queries.name, view, "-p99"),
            title,
            extra,
            view,
        )
        for mean, _, view, title, extra in found[:TOP]
    ]


def _ratio_text(hit: float, miss: float) -> str:
    return fmt.number(hit / (hit + miss), RATIO) if hit + miss else fmt.NO_DATA


def _caches(
    hits: FamilyView, misses: FamilyView, link: LinkMaker, over: str
) -> tuple[Figure, list[Ranked]]:
    hit_by = {k: v[0] for k, v in _grouped(hits, "cache").items()}
    miss_by = {k: v[0] for k, v in _grouped(misses, "cache").items()}
    total_hits, total_misses = sum(hit_by.values()), sum(miss_by.values())
    href = link(hits.name, "", "")
    lookups = total_hits + total_misses
    figure = Figure(
        "cache",
        "Cache hit ratio",
        _ratio_text(total_hits, total_misses),
        href,
        f"{fmt.count(total_hits)} hits, {fmt.count(total_misses)} misses ({over})",
        over if lookups else f"no lookups, {over}",
    )
    caches = [
        Ranked(
            alias,
            _ratio_text(hit_by.get(alias, 0.0), miss_by.get(alias, 0.0)),
            link(hits.name, alias, ""),
            f"{fmt.count(hit_by.get(alias, 0.0))} hits, "
            f"{fmt.count(miss_by.get(alias, 0.0))} misses ({over})",
        )
        for alias in sorted(set(hit_by) | set(miss_by))
    ]
    return figure, caches


def _exceptions(exceptions: FamilyView, link: LinkMaker) -> list[Ranked]:
    """Exception types, most raised over the window first, with their totals."""
    span = _span(exceptions)
    window = exceptions.window
    by_type: dict[str, list[float]] = {}
    index = exceptions.labelnames.index("type") if "type" in exceptions.labelnames else -1
    for s in exceptions.series:
        total = exceptions.stats(s).total
        recent = exceptions.stats(s).increase if span > 0 else NAN
        name = s.labels[index] if index >= 0 else ""
        _add(by_type, name, [0.0 if recent != recent else recent, total])
    ranked = sorted(by_type.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))
    out = []
    for name, (recent, total) in ranked[:TOP]:
        href = link(exceptions.name, name, "-rate")
        if window is not None and span > 0:
            text, extra = (
                f"{fmt.count(recent)} in the last {fmt.duration(span)}",
                f"{fmt.count(total)} in all",
            )
        else:
            text, extra = f"{fmt.count(total)} in all", ""
        out.append(Ranked(name, text, href, f"{fmt.count(total)} since start", extra))
    return out


def family_map(families: Iterable[FamilyView]) -> dict[str, FamilyView]:
    """Families by name, for :func:`build_overview`."""
    return {f.name: f for f in families}
