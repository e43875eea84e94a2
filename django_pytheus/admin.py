"""The metrics dashboard inside the Django admin: what is happening now, and every metric.

Registered for :class:`~django_pytheus.models.Metric`, a model without a table, so that
"Metrics" shows on the admin index under the app's heading. Its changelist, reversed
with ``reverse("admin:django_pytheus_metric_changelist")``, is the dashboard:

* an overview for whoever is on call (:mod:`django_pytheus.overview`): requests per
  second, the share of 5xx, p99 latency, the slowest views, the views making the most
  queries per request, the cache hit ratio, exceptions by type, the backend's health;
* every family of the registry (with the Redis backend, also those that only other
  processes defined): this site's own first, then django_pytheus's, then the process's;
  per family the worst :data:`SERIES_PREVIEW` series (highest rate, p99 or value; any
  column sorts), and a page of its own listing them all (:data:`SERIES_PER_PAGE` per
  page); search, a type filter;
* rates, means and percentiles over a time window (``?w=``: 1, 5 or 15 minutes, or
  since start), from the readings this process keeps (:mod:`django_pytheus.history`);
* live values: the page polls the ``data/`` JSON view for the families on screen.

When the backend cannot be read (Redis down), the page shows the values this process
read last, marked stale with their age, this process's own values for the rest, and
what failed since when.

Who may see it: active staff users with the ``django_pytheus.view_metric`` permission
(superusers have it). Anonymous users are sent to the admin login, staff without the
permission get 403; the JSON view follows the same rule. ``PYTHEUS["AUTH"]`` governs
``/metrics`` (scrapers), not this page. Its own requests are left out of the request
metrics unless ``PYTHEUS["RECORD_DASHBOARD"]`` is True. Nothing here queries the
database for metric data, and nothing can be added, changed or deleted.
"""

from __future__ import annotations

import functools
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.core.paginator import Page, Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils import timezone

from django_pytheus import formatting as fmt
from django_pytheus.conf import get_settings
from django_pytheus.dashboard import (
    ORIGINS,
    SORTS,
    TYPES,
    FamilyView,
    Outage,
    Row,
    Selection,
    backend_status,
    build_families,
    origin,
    select,
)
from django_pytheus.history import History
from django_pytheus.metrics import DASHBOARD_VIEW, get_metrics
from django_pytheus.models import Metric
from django_pytheus.overview import QUERIES, AppNames, Overview, Trend, build_overview
from pytheus.backends import get_backend
from pytheus.definitions import MetricSeries, SeriesSource
from pytheus.exceptions import BackendUnavailableError
from pytheus.families import as_series
from pytheus.naming import sample_name
from pytheus.registry import REGISTRY, get_registry

__all__ = [
    "FAMILIES_PER_PAGE",
    "SERIES_PER_PAGE",
    "SERIES_PREVIEW",
    "WINDOWS",
    "MetricAdmin",
]

#: Families per page of the dashboard.
FAMILIES_PER_PAGE = 20
#: Series shown per family on the dashboard (the worst first); its own page shows all.
SERIES_PREVIEW = 10
#: Series per page of a family's own page.
SERIES_PER_PAGE = 100
#: The time windows offered (``?w=`` seconds; 0 is since start), the first the default.
WINDOWS = {"60": "1 min", "300": "5 min", "900": "15 min", "0": "since start"}
DEFAULT_WINDOW = "60"


# --------------------------------------------------------------------------- state


class _State:
    """What this process remembers between requests: readings for rates, the trend of
    the overview's figures, the last values read (shown stale during an outage), and
    the outage itself. One per process; every worker keeps its own."""

    def __init__(self) -> None:
        self.history = History()
        self.trend = Trend()
        self.lock = threading.Lock()
        self.last: dict[str, FamilyView] = {}  # the last values read, by family name
        self.last_read = 0.0  # when (Unix time)
        self.outage: Outage | None = None
        # The clock of the readings (monotonic: rates must not jump with the wall clock).
        self.clock: Callable[[], float] = time.monotonic
        self._source: tuple[weakref.ref[Any], weakref.ref[Any]] | None = None

    def follow(self, registry: object, backend: object) -> None:
        """Start afresh when the registry or the backend is another one (tests swap
        them; readings of other values would make up rates)."""
        source = self._source
        if source is None or source[0]() is not registry or source[1]() is not backend:
            self.forget()
            self._source = (weakref.ref(registry), weakref.ref(backend))

    def read_ok(self, families: Iterable[FamilyView], when: float) -> None:
        with self.lock:
            for f in families:
                self.last[f.name] = f
            self.last_read = when
            self.outage = None

    def read_failed(self, error: str, when: float) -> Outage:
        with self.lock:
            if self.outage is None:
                self.outage = Outage(when, error)
            else:
                self.outage.error = error
                self.outage.failures += 1
            return self.outage

    def forget(self) -> None:
        """Start afresh (tests): no readings, no trend, nothing last read."""
        with self.lock:
            self.history.forget()
            self.trend.clear()
            self.last.clear()
            self.last_read = 0.0
            self.outage = None


STATE = _State()


@dataclass
class Shown:
    """A family on a page: the family and the rows of the series shown."""

    family: FamilyView
    rows: list[Row]
    large: bool  # one series without labels: stat tiles and a large chart
    sort: str  # the sort in force (a column id, "-" first for highest first)
    hidden: int = 0  # series of the family (after the search) not shown here
    heading: str = ""  # the origin heading that starts here, on the dashboard
    family_url: str = ""  # its own page, same window and sort
    more_url: str = ""  # the same, searched as here
    headers: list[dict[str, Any]] = field(default_factory=list)  # see _headers()

    @property
    def extra_ids(self) -> set[str]:
        """The columns left out on a phone until asked for."""
        return {h["id"] for h in self.headers if h["extra"]}


@dataclass
class PageData:
    """Everything one dashboard request computed, for the template or the JSON."""

    params: dict[str, str]
    shown: list[Shown] = field(default_factory=list)
    selection: Selection | None = None
    page: Page[Any] | None = None
    overview: Overview | None = None
    error: str = ""
    stale: bool = False  # the values are the last ones read, not current ones
    read_at: float = 0.0  # when the values shown were read (Unix time)
    local_only: bool = False  # some families show this process's values only
    collect_ms: float = 0.0
    build_ms: float = 0.0


def _local_series(names: Sequence[str] | None) -> list[MetricSeries]:
    """This process's own values, read without the backend (which cannot be read)."""
    out: list[MetricSeries] = []
    for collector in REGISTRY.collectors():
        try:
            if isinstance(collector, SeriesSource):
                out.append(collector.local_series())
            else:
                out.extend(as_series(f) for f in collector.collect())
        except Exception:  # a custom collector that fails is left out, as in a scrape
            continue
    return [
        ms for ms in out if names is None or _wanted(ms.definition.name, ms.definition.type, names)
    ]


def _wanted(name: str, kind: str, names: Sequence[str]) -> bool:
    return name in names or sample_name(name, kind) in names


def app_names() -> AppNames:
    """The names of django_pytheus's metrics, with the site's namespace."""
    m = get_metrics()
    return AppNames(
        every=frozenset(metric.definition.name for metric in m.all()),
        requests=m.requests_total.definition.name,
        duration=m.request_duration.definition.name,
        queries=m.queries_per_request.definition.name,
        cache_hits=m.cache_hits_total.definition.name,
        cache_misses=m.cache_misses_total.definition.name,
        exceptions=m.exceptions_total.definition.name,
    )


def _params(request: HttpRequest) -> dict[str, str]:
    get = request.GET
    kind = get.get("type", "")
    sort = get.get("sort", "")
    window = get.get("w", DEFAULT_WINDOW)
    params = {
        "q": get.get("q", "").strip()[:200],
        "type": kind if kind in TYPES else "",
        "sort": sort if sort in SORTS else "",
        "w": window if window in WINDOWS else DEFAULT_WINDOW,
        "p": get.get("p", "1"),
    }
    # Per-family column sorts: o.<family>=-p99 (validated against the family later).
    for key in get:
        if key.startswith("o.") and len(params) < 60:
            params[key] = get.get(key, "")[:80]
    return params


_DEFAULTS = {"sort": "", "p": "1", "w": DEFAULT_WINDOW}


def _query(params: Mapping[str, str], **changes: str) -> str:
    """``?q=...&type=...`` with ``changes`` applied; empty and default values left out."""
    return query_string({**params, **changes})


def query_string(params: Mapping[str, str], empty: str = "?") -> str:
    """``params`` as a query string, empty and default values left out; ``empty``
    when nothing is left (``?`` clears the current query in a link)."""
    kept = {k: v for k, v in params.items() if v and _DEFAULTS.get(k) != v}
    return f"?{urlencode(kept)}" if kept else empty


def _headers(family: FamilyView, sort: str) -> list[dict[str, Any]]:
    """Each column's header: title, tooltip, aria-sort and the sort it links to."""
    columns = [(f"label-{name}", name, "", False, True) for name in family.labelnames] + [
        (c.id, c.title, c.description, c.numeric, c.essential) for c in family.columns
    ]
    current = sort.lstrip("-")
    descending = sort.startswith("-")
    out = []
    for cid, title, description, numeric, essential in columns:
        active = cid == current
        # A click on the sorted column turns it around; on another, numbers sort
        # highest first and labels alphabetically.
        first = f"-{cid}" if numeric else cid
        link = (cid if descending else f"-{cid}") if active else first
        out.append(
            {
                "id": cid,
                "title": title,
                "description": description,
                "numeric": numeric,
                "aria_sort": ("descending" if descending else "ascending") if active else "",
                "sort": link,
                # Left out on a phone until asked for (the sorted column never is).
                "extra": not essential and not active,
            }
        )
    return out


def _shown(
    family: FamilyView, series: Sequence[Any], hidden: int, sort: str, heading: str = ""
) -> Shown:
    large = not family.labelnames and family.total_series == 1 and len(series) == 1
    sort = sort if sort in family.sort_options() else family.default_sort
    rows = family.rows(series, large=large)
    return Shown(family, rows, large, sort, hidden, heading, headers=_headers(family, sort))


class MetricAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """The dashboard as the changelist of :class:`Metric`; see the module docstring."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Metric | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Metric | None = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        def wrap(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
            # admin_view: active staff only (else the login page), never cached, CSRF.
            wrapped = functools.update_wrapper(self.admin_site.admin_view(view), view)
            # Left out of the request metrics (PYTHEUS["RECORD_DASHBOARD"]).
            setattr(wrapped, DASHBOARD_VIEW, True)
            return wrapped

        info = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("", wrap(self.changelist_view), name=f"{info}_changelist"),
            path("data/", wrap(self.data_view), name=f"{info}_data"),
            path("family/<str:name>/", wrap(self.family_view), name=f"{info}_family"),
        ]

    # ------------------------------------------------------------------ views

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> TemplateResponse:
        """The dashboard: the overview, then every family, searched, filtered, paginated."""
        self._check_permission(request)
        data = self._dashboard(request)
        return self._render(request, "dashboard.html", data, extra_context)

    def family_view(self, request: HttpRequest, name: str) -> TemplateResponse:
        """One family with all its series (searched, sorted and paginated)."""
        self._check_permission(request)
        data = self._family(request, name)
        return self._render(request, "family.html", data, {"family_name": name})

    def data_view(self, request: HttpRequest) -> JsonResponse:
        """What the page with the same query string shows, as JSON, for its live updates.

        ``?family=<name>`` answers for that family's page; ``?name=a&name=b`` (the
        families on screen, which the auto-refresh adds) reads only those and the
        overview's. Each family lists its rows in order (keys are the series' label
        text) with the cells' text as the page shows them: the page only places text.
        """
        self._check_permission(request)
        name = request.GET.get("family")
        if name:
            data = self._family(request, name)
        else:
            data = self._dashboard(request, request.GET.getlist("name")[:FAMILIES_PER_PAGE])
        payload = {
            "time": timezone.now().isoformat(),
            "read_at": _iso(data.read_at),
            "stale": data.stale,
            "error": data.error,
            "status": _json_status(self._status()),
            "families": {s.family.name: _family_json(s) for s in data.shown},
            "collect_ms": round(data.collect_ms, 1),
        }
        if data.overview is not None:
            payload["overview"] = _overview_json(data.overview)
        return JsonResponse(payload, status=503 if data.error else 200)

    # ------------------------------------------------------------------ work

    def _check_permission(self, request: HttpRequest) -> None:
        if not self.has_view_permission(request):
            raise PermissionDenied

    def _read(
        self, data: PageData, names: Sequence[str] | None, hints: Mapping[str, Any]
    ) -> list[FamilyView]:
        """Read ``names`` (all families with None) and give each its window; when the
        backend fails, the families last read (stale) and this process's own values."""
        start = time.perf_counter()
        wall = time.time()
        STATE.follow(get_registry(), get_backend())
        try:
            found = list(REGISTRY.collect_series(names))
        except BackendUnavailableError as exc:
            data.collect_ms = (time.perf_counter() - start) * 1000
            return self._fallback(data, names, str(exc), hints)
        data.collect_ms = (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        views = build_families(found, hints)
        seconds = float(data.params["w"])
        now = STATE.clock()
        for view in views:
            view.read_at = wall
            view.observe(STATE.history, seconds, now)
        STATE.read_ok(views, wall)
        data.read_at = wall
        data.build_ms = (time.perf_counter() - start) * 1000
        return views

    def _fallback(
        self, data: PageData, names: Sequence[str] | None, error: str, hints: Mapping[str, Any]
    ) -> list[FamilyView]:
        STATE.read_failed(error, time.time())
        data.error = f"The metrics could not be read: {error}"
        data.stale = True
        with STATE.lock:
            last = dict(STATE.last)
            data.read_at = STATE.last_read
        views = [f for f in last.values() if names is None or _wanted(f.name, f.type, names)]
        for view in views:
            view.stale_since = data.read_at
        known = {v.name for v in views}
        local = [ms for ms in _local_series(names) if ms.definition.name not in known]
        for view in build_families(local, hints):
            view.local_only = True  # never given to the history: not the shared values
            views.append(view)
            data.local_only = True
        return views

    def _page_families(
        self, data: PageData, names: Sequence[str]
    ) -> tuple[list[FamilyView], AppNames]:
        app = app_names()
        hints = {app.queries: QUERIES}
        wanted = [*names, *app.all()] if names else None
        views = self._read(data, wanted, hints)
        build_start = time.perf_counter()
        by_name = {v.name: v for v in views}
        data.overview = build_overview(
            by_name,
            app,
            self._family_link(data.params),
            trend=STATE.trend,
            now=STATE.clock(),
        )
        data.build_ms += (time.perf_counter() - build_start) * 1000
        if names:
            wanted_names = set(names)
            views = [v for v in views if v.name in wanted_names]
        return views, app

    def _dashboard(self, request: HttpRequest, names: Sequence[str] = ()) -> PageData:
        """The dashboard's page; with ``names`` (a poll), only those families and the
        overview's are read (a family's rows depend only on itself and the search)."""
        data = PageData(_params(request))
        params = data.params
        views, app = self._page_families(data, names)
        start = time.perf_counter()
        selection = select(
            views, query=params["q"], type=params["type"], sort=params["sort"], app=app.every
        )
        data.selection = selection
        if names:
            families = selection.families
        else:
            data.page = Paginator(selection.families, FAMILIES_PER_PAGE).get_page(params["p"])
            families = list(data.page.object_list)
        previous = ""
        for family in families:
            heading = ""
            if not params["sort"] and not names:
                where = origin(family.name, app.every)
                heading = ORIGINS[where] if where != previous else ""
                previous = where
            sort = params.get(f"o.{family.name}", "")
            preview = family.sorted(family.series, sort, limit=SERIES_PREVIEW)
            hidden = len(family.series) - len(preview)
            data.shown.append(_shown(family, preview, hidden, sort, heading))
        data.build_ms += (time.perf_counter() - start) * 1000
        return data

    def _family(self, request: HttpRequest, name: str) -> PageData:
        data = PageData(_params(request))
        app = app_names()
        # Only this family is read (name[] semantics: "x" or "x_total" find counter x).
        views = self._read(data, [name], {app.queries: QUERIES})
        family = next((f for f in views if name in (f.name, f.query_name)), None)
        if family is None:
            if data.error:
                return data
            raise Http404(f"No metric family is named {name!r}.")
        start = time.perf_counter()
        selection = select([family], query=data.params["q"])
        data.selection = selection
        shown = selection.families[0] if selection.families else family
        matching = selection.families[0].series if selection.families else []
        sort = data.params.get(f"o.{family.name}", "")
        ordered = shown.sorted(matching, sort)
        data.page = Paginator(ordered, SERIES_PER_PAGE).get_page(data.params["p"])
        data.shown.append(_shown(shown, list(data.page.object_list), 0, sort))
        data.build_ms += (time.perf_counter() - start) * 1000
        return data

    def _status(self) -> dict[str, Any]:
        try:
            settings = get_settings()
            config, alias = settings.backend_config, settings.backend_cache_alias
        except ImproperlyConfigured:  # reported by the system checks and at start-up
            config, alias = None, None
        with STATE.lock:
            outage = STATE.outage
        return backend_status(get_backend(), config, outage=outage, cache_alias=alias)

    def _reverse(self, view: str, *args: str) -> str:
        """This admin's URL of ``view`` (on a custom AdminSite too)."""
        opts = self.opts
        return reverse(
            f"admin:{opts.app_label}_{opts.model_name}_{view}",
            args=args,
            current_app=self.admin_site.name,
        )

    def _family_link(self, params: Mapping[str, str]) -> Callable[[str, str, str], str]:
        """Links of the overview: a family's page, searched and sorted, same window."""

        def link(name: str, query: str, sort: str) -> str:
            try:
                url = self._reverse("family", name)
            except NoReverseMatch:
                return ""
            return url + query_string({"q": query, "w": params["w"], f"o.{name}": sort}, "")

        return link

    def _render(
        self,
        request: HttpRequest,
        template: str,
        data: PageData,
        extra_context: dict[str, Any] | None,
    ) -> TemplateResponse:
        opts = self.opts
        params = data.params
        selection = data.selection
        data_query = _query(params)
        family_name = (extra_context or {}).get("family_name")
        if family_name:
            data_query = _query(params, family=family_name)
        type_links = [
            {
                "label": "All",
                "query": _query(params, type="", p="1"),
                "selected": not params["type"],
                "count": sum(selection.type_counts.values()) if selection else None,
            }
        ]
        for kind, label in TYPES.items():
            count = selection.type_counts.get(kind, 0) if selection else 0
            if count or params["type"] == kind:
                type_links.append(
                    {
                        "label": label,
                        "query": _query(params, type=kind, p="1"),
                        "selected": params["type"] == kind,
                        "count": count,
                    }
                )
        sort_links = [
            {
                "label": label,
                "query": _query(params, sort=key, p="1"),
                "selected": key == params["sort"],
            }
            for key, label in SORTS.items()
        ]
        window_links = [
            {"value": key, "label": label, "selected": key == params["w"]}
            for key, label in WINDOWS.items()
        ]
        page_links: list[dict[str, Any]] = []
        if data.page is not None and data.page.paginator.num_pages > 1:
            for number in data.page.paginator.get_elided_page_range(data.page.number):
                page_links.append(
                    {
                        "number": number,
                        "query": _query(params, p=str(number)) if isinstance(number, int) else "",
                        "current": number == data.page.number,
                    }
                )
        try:
            exposition_url = reverse("django_pytheus:metrics")
        except NoReverseMatch:
            exposition_url = ""
        link = self._family_link(params)
        for shown in data.shown:
            name = shown.family.name
            for header in shown.headers:
                header["query"] = (
                    _query(params, **{f"o.{name}": header["sort"], "p": "1"}) + f"#metric-{name}"
                )
            sort = params.get(f"o.{name}", "")
            shown.family_url = link(name, "", sort)
            shown.more_url = link(name, params["q"] if shown.family.matched_by_labels else "", sort)
        context = {
            **self.admin_site.each_context(request),
            "title": str(opts.verbose_name_plural).capitalize(),
            "subtitle": None,
            "opts": opts,
            "app_label": opts.app_label,
            "has_view_permission": True,
            "data": data,
            "params": params,
            # What the page's forms carry along: the values that are not the default.
            "kept_params": {
                k: v for k, v in params.items() if v and _DEFAULTS.get(k) != v and k != "p"
            },
            "status": self._status(),
            "type_links": type_links,
            "sort_links": sort_links,
            "window_links": window_links,
            "page_links": page_links,
            "read_at": _iso(data.read_at),
            "read_at_text": fmt.clock(data.read_at) if data.read_at else "",
            "read_age": fmt.age(time.time() - data.read_at) if data.read_at else "",
            "data_url": self._reverse("data") + data_query,
            "changelist_url": self._reverse("changelist"),
            "exposition_url": exposition_url,
            "series_preview": SERIES_PREVIEW,
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request, f"admin/{opts.app_label}/{opts.model_name}/{template}", context
        )


# --------------------------------------------------------------------------- JSON


def _iso(when: float) -> str:
    return datetime.fromtimestamp(when, tz=UTC).isoformat() if when else ""


def _json_status(status: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in status.items() if isinstance(v, str | bool)}


def _family_json(shown: Shown) -> dict[str, Any]:
    rows = {}
    for row in shown.rows:
        cells: dict[str, Any] = {c.id: [c.text, c.title] for c in row.cells}
        entry: dict[str, Any] = {"labels": [list(p) for p in row.label_pairs()], "cells": cells}
        if row.chart is not None:
            entry["bars"] = [[b.y, b.height, b.title] for b in row.chart.bars]
            entry["chart"] = row.chart.summary
        rows[row.key] = entry
    family = shown.family
    return {
        "series": family.series_text,
        "window": family.window_text,
        "window_title": family.window_title,
        "window_bounds": [round(t, 3) for t in family.window_bounds],
        "order": [row.key for row in shown.rows],
        "hidden": shown.hidden,
        "stale": bool(family.stale_since),
        "local": family.local_only,
        "rows": rows,
    }


def _overview_json(overview: Overview) -> dict[str, Any]:
    def ranked(items: Iterable[Any]) -> list[list[str]]:
        return [[r.name, r.text, r.title, r.extra, r.href, r.raw] for r in items]

    return {
        "window": overview.window_text,
        "figures": {
            f.id: {
                "text": f.text,
                "title": f.title,
                "detail": f.detail,
                "bad": f.bad,
                "stale": f.stale,
                "spark": [f.spark.points, f.spark.summary] if f.spark else None,
            }
            for f in overview.figures
        },
        "windows": overview.windows,
        "lists": {
            "slow": ranked(overview.slow),
            "queries": ranked(overview.queries),
            "exceptions": ranked(overview.exceptions),
            "caches": ranked(overview.caches),
        },
    }


admin.site.register(Metric, MetricAdmin)
