"""The metrics dashboard inside the Django admin: the registry and its live values.

Registered for :class:`~django_pytheus.models.Metric`, a model without a table, so that
"Metrics" shows on the admin index under the app's heading. Its changelist, reversed
with ``reverse("admin:django_pytheus_metric_changelist")``, is the dashboard:

* every family of ``REGISTRY.collect()`` (with the Redis backend, also those that only
  other processes defined), with its type, help, label names, series and values;
  histograms with count, sum, mean, estimated p50/p90/p99 and a bucket chart;
* search (names, help, label values), a type filter, sorting, pagination of families
  and, per family, the first :data:`SERIES_PREVIEW` series with a link to a page of
  its own listing them all (:data:`SERIES_PER_PAGE` per page);
* a backend status panel; an auto-refresh that polls the ``data/`` JSON view.

Who may see it: active staff users with the ``django_pytheus.view_metric`` permission
(superusers have it). Anonymous users are sent to the admin login, staff without the
permission get 403; the JSON view follows the same rule. ``PYTHEUS["AUTH"]`` governs
``/metrics`` (scrapers), not this page. Nothing here queries the database for metric
data, and nothing can be added, changed or deleted.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.core.paginator import Page, Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils import timezone

from django_pytheus.conf import get_settings
from django_pytheus.dashboard import (
    TYPES,
    FamilyView,
    Row,
    Selection,
    backend_status,
    build_families,
    select,
)
from django_pytheus.models import Metric
from pytheus.backends import get_backend
from pytheus.definitions import SeriesSource
from pytheus.exceptions import BackendUnavailableError
from pytheus.registry import REGISTRY

__all__ = ["FAMILIES_PER_PAGE", "SERIES_PER_PAGE", "SERIES_PREVIEW", "MetricAdmin"]

#: Families per page of the dashboard.
FAMILIES_PER_PAGE = 20
#: Series shown per family on the dashboard; the family's own page shows the rest.
SERIES_PREVIEW = 10
#: Series per page of a family's own page.
SERIES_PER_PAGE = 100

SORTS = {"name": "Name", "series": "Most series"}


@dataclass
class Shown:
    """A family on a page: the family and the rows of the series shown."""

    family: FamilyView
    rows: list[Row]
    large: bool  # one series without labels: stat tiles and a large chart
    hidden: int = 0  # series of the family (after the search) not shown here


@dataclass
class PageData:
    """Everything one dashboard request computed, for the template or the JSON."""

    params: dict[str, str]
    shown: list[Shown] = field(default_factory=list)
    selection: Selection | None = None
    page: Page[Any] | None = None
    error: str = ""
    collect_ms: float = 0.0
    build_ms: float = 0.0


def _local_labelnames() -> dict[str, tuple[str, ...]]:
    """Label names of the metrics this process defined, by family name (a family
    without series would otherwise show none)."""
    return {
        c.definition.name: c.definition.labelnames
        for c in REGISTRY.collectors()
        if isinstance(c, SeriesSource)
    }


def _params(request: HttpRequest) -> dict[str, str]:
    get = request.GET
    kind = get.get("type", "")
    sort = get.get("sort", "name")
    return {
        "q": get.get("q", "").strip()[:200],
        "type": kind if kind in TYPES else "",
        "sort": sort if sort in SORTS else "name",
        "p": get.get("p", "1"),
    }


def _query(params: dict[str, str], **changes: str) -> str:
    """``?q=...&type=...`` with ``changes`` applied; empty and default values left out."""
    merged = {**params, **changes}
    kept = {
        k: v
        for k, v in merged.items()
        if v and not (k == "sort" and v == "name") and not (k == "p" and v == "1")
    }
    return f"?{urlencode(kept)}" if kept else "?"


def _shown(family: FamilyView, series_slice: Sequence[Any], hidden: int) -> Shown:
    large = not family.labelnames and family.total_series == 1 and len(series_slice) == 1
    return Shown(family, family.rows(series_slice, large=large), large, hidden)


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
            wrapped = self.admin_site.admin_view(view)
            return functools.update_wrapper(wrapped, view)

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
        """The dashboard: every family, searched, filtered, sorted and paginated."""
        self._check_permission(request)
        data = self._dashboard(request)
        return self._render(request, "dashboard.html", data, extra_context)

    def family_view(self, request: HttpRequest, name: str) -> TemplateResponse:
        """One family with all its series (searched and paginated)."""
        self._check_permission(request)
        data = self._family(request, name)
        return self._render(request, "family.html", data, {"family_name": name})

    def data_view(self, request: HttpRequest) -> JsonResponse:
        """The values of what the page with the same query string shows, as JSON.

        ``?family=<name>`` answers for that family's page; ``?name=a&name=b`` (the
        families on screen, which the auto-refresh adds) reads only those. Keys are the
        series' label text, values the cells' text as the page shows them.
        """
        self._check_permission(request)
        name = request.GET.get("family")
        if name:
            data = self._family(request, name)
        else:
            data = self._dashboard(request, request.GET.getlist("name")[:FAMILIES_PER_PAGE])
        families: dict[str, Any] = {}
        for shown in data.shown:
            rows = {}
            for row in shown.rows:
                cells: dict[str, Any] = dict(row.cells)
                if row.chart is not None:
                    cells["bars"] = [[b.y, b.height, b.title] for b in row.chart.bars]
                rows[row.key] = cells
            families[shown.family.name] = {
                "series": shown.family.series_text,
                "rows": rows,
            }
        status = self._status()
        payload = {
            "time": timezone.now().isoformat(),
            "error": data.error,
            "status": {k: v for k, v in status.items() if isinstance(v, str | bool)},
            "families": families,
            "collect_ms": round(data.collect_ms, 1),
        }
        return JsonResponse(payload, status=503 if data.error else 200)

    # ------------------------------------------------------------------ work

    def _check_permission(self, request: HttpRequest) -> None:
        if not self.has_view_permission(request):
            raise PermissionDenied

    def _collect(self, data: PageData, names: Sequence[str] | None = None) -> list[FamilyView]:
        start = time.perf_counter()
        try:
            families = list(REGISTRY.collect(names))
        except BackendUnavailableError as exc:
            data.error = f"The metrics could not be read: {exc}"
            return []
        finally:
            data.collect_ms = (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        views = build_families(families, _local_labelnames())
        data.build_ms = (time.perf_counter() - start) * 1000
        return views

    def _dashboard(self, request: HttpRequest, names: Sequence[str] = ()) -> PageData:
        """The dashboard's page; with ``names`` (a poll), only those families, read alone.

        A family's rows depend only on itself and the search, not on the families
        around it, so a poll for the families on screen reads no others.
        """
        data = PageData(_params(request))
        params = data.params
        views = self._collect(data, names or None)
        start = time.perf_counter()
        selection = select(views, query=params["q"], type=params["type"], sort=params["sort"])
        data.selection = selection
        if names:
            wanted = set(names)
            families = [f for f in selection.families if f.name in wanted]
        else:
            data.page = Paginator(selection.families, FAMILIES_PER_PAGE).get_page(params["p"])
            families = list(data.page.object_list)
        for family in families:
            preview = family.series[:SERIES_PREVIEW]
            data.shown.append(_shown(family, preview, len(family.series) - len(preview)))
        data.build_ms += (time.perf_counter() - start) * 1000
        return data

    def _family(self, request: HttpRequest, name: str) -> PageData:
        data = PageData(_params(request))
        # Only this family is read (name[] semantics: "x" or "x_total" find counter x).
        views = self._collect(data, [name])
        if data.error:
            return data
        family = next((f for f in views if name in (f.name, f.query_name)), None)
        if family is None:
            raise Http404(f"No metric family is named {name!r}.")
        start = time.perf_counter()
        selection = select([family], query=data.params["q"])
        data.selection = selection
        matching = selection.families[0].series if selection.families else []
        data.page = Paginator(matching, SERIES_PER_PAGE).get_page(data.params["p"])
        shown = selection.families[0] if selection.families else family
        data.shown.append(_shown(shown, list(data.page.object_list), 0))
        data.build_ms += (time.perf_counter() - start) * 1000
        return data

    def _status(self) -> dict[str, Any]:
        try:
            config = get_settings().backend_config
        except ImproperlyConfigured:  # reported by the system checks and at start-up
            config = None
        return backend_status(get_backend(), config)

    def _reverse(self, view: str) -> str:
        """This admin's URL of ``view`` (on a custom AdminSite too)."""
        opts = self.opts
        return reverse(
            f"admin:{opts.app_label}_{opts.model_name}_{view}", current_app=self.admin_site.name
        )

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
        context = {
            **self.admin_site.each_context(request),
            "title": str(opts.verbose_name_plural).capitalize(),
            "subtitle": None,
            "opts": opts,
            "app_label": opts.app_label,
            "has_view_permission": True,
            "data": data,
            "params": params,
            "status": self._status(),
            "type_links": type_links,
            "sort_links": sort_links,
            "page_links": page_links,
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


admin.site.register(Metric, MetricAdmin)
