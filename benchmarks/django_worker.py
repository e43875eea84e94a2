"""One configuration of a minimal Django project, timed for the "Django" section.

Django's settings are global to a process, so each configuration runs in a Python of its
own, started by ``djangobench.py`` as ``django_worker.py CONFIG`` and driven over
``_worker.py``'s protocol:

* ``bare``: Django alone, no metrics;
* ``django-prometheus``: its ``PrometheusBeforeMiddleware`` first and
  ``PrometheusAfterMiddleware`` last, its app installed, and its database ENGINE
  ``django_prometheus.db.backends.sqlite3``;
* ``pytheus``: our app installed (in-memory backend, default ``PYTHEUS`` otherwise) and
  our ``PytheusMiddleware`` first; queries are observed through the execute wrapper the
  app puts on every connection;
* ``pytheus-compat``: the same with ``PYTHEUS["COMPAT"] = "django_prometheus"``: ours and
  django-prometheus's metric set, both recorded.

Everything else is the same: one URL pattern to a view returning ``HttpResponse("ok")``,
no other middleware or app, an in-memory SQLite database. The settings are built here
with ``settings.configure()``; no settings module is read.

Cases (the row keys):

* ``django_request``: one GET through ``WSGIHandler()``, called directly (no socket),
  its response iterated and closed, as a WSGI server does;
* ``django_select``: ``connection.cursor().execute("SELECT 1")``, as the ORM opens a
  cursor per query, outside any request;
* ``django_select_reused``: ``cursor.execute("SELECT 1")`` on one open cursor.

Before a case is timed, it is checked: the response is a 200 "ok", the query returns 1,
and the configuration's instrumentation has counted it.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Mapping
from importlib.metadata import version
from types import ModuleType
from typing import Any

from _harness import Case
from _worker import serve

CONFIGS = ("bare", "django-prometheus", "pytheus", "pytheus-compat")
PATH = "/hello/"
URLCONF = "_bench_django_urls"


def _view(request: Any) -> Any:
    from django.http import HttpResponse

    return HttpResponse("ok")


def _urlconf() -> str:
    """The URLconf: a module made here, registered under a name Django can import."""
    from django.urls import path

    module = ModuleType(URLCONF)
    module.urlpatterns = [path(PATH.lstrip("/"), _view, name="hello")]  # type: ignore[attr-defined]
    sys.modules[URLCONF] = module
    return URLCONF


def configure(config: str) -> None:
    """``settings.configure()`` for ``config``, then ``django.setup()``."""
    import django
    from django.conf import settings

    engine = "django.db.backends.sqlite3"
    apps: list[str] = []
    middleware: list[str] = []
    extra: dict[str, Any] = {}
    if config == "django-prometheus":
        engine = "django_prometheus.db.backends.sqlite3"
        apps = ["django_prometheus"]
        middleware = [
            "django_prometheus.middleware.PrometheusBeforeMiddleware",
            "django_prometheus.middleware.PrometheusAfterMiddleware",
        ]
    elif config in ("pytheus", "pytheus-compat"):
        apps = ["django_pytheus"]
        middleware = ["django_pytheus.middleware.PytheusMiddleware"]
        # The in-memory backend, whatever PYTHEUS_BACKEND_CLASS says.
        extra["PYTHEUS"] = {"BACKEND": "pytheus.backends.memory.MemoryBackend"}
        if config == "pytheus-compat":
            # django-prometheus's metric set recorded as well as ours.
            extra["PYTHEUS"]["COMPAT"] = "django_prometheus"
    elif config != "bare":
        raise SystemExit(f"unknown configuration {config!r}; one of {', '.join(CONFIGS)}")
    settings.configure(
        DEBUG=False,
        SECRET_KEY="benchmark",
        ALLOWED_HOSTS=["testserver"],
        ROOT_URLCONF=_urlconf(),
        INSTALLED_APPS=apps,
        MIDDLEWARE=middleware,
        DATABASES={"default": {"ENGINE": engine, "NAME": ":memory:"}},
        USE_TZ=True,
        LOGGING_CONFIG=None,
        **extra,
    )
    django.setup()


# --------------------------------------------------------------------------- checks
# What each configuration's instrumentation counted so far: requests, queries.


def _counts(config: str) -> tuple[float, float]:
    if config == "bare":
        return 0.0, 0.0
    if config == "django-prometheus":
        from prometheus_client import REGISTRY

        def value(name: str, labels: Mapping[str, str] | None = None) -> float:
            return REGISTRY.get_sample_value(name, dict(labels or {})) or 0.0

        return (
            value("django_http_requests_before_middlewares_total"),
            value("django_db_execute_total", {"alias": "default", "vendor": "sqlite"}),
        )
    from django_pytheus.metrics import get_metrics

    m = get_metrics()
    if config == "pytheus-compat":
        assert m.compat is not None
        return (
            m.compat.by_method.labels(method="GET").snapshot()[0],
            m.compat.db_series("default", "sqlite").execute.snapshot()[0],
        )
    requests = m.requests_total.labels(method="GET", view=PATH, status="200")
    queries = m.query_duration.labels(alias="default", vendor="sqlite", statement="select")
    # A histogram's snapshot has its counts per bucket (not cumulative): they add up.
    return requests.snapshot()[0], float(sum(queries.snapshot().counts))


def _check(config: str, what: str, once: Callable[[], object], expect: object) -> None:
    before = _counts(config)
    got = once()
    if got != expect:
        raise RuntimeError(f"{config} {what}: got {got!r}, expected {expect!r}")
    after = _counts(config)
    index = 0 if what == "request" else 1
    if config != "bare" and after[index] != before[index] + 1:
        raise RuntimeError(
            f"{config} {what}: its instrumentation did not count it ({before} -> {after})"
        )


# --------------------------------------------------------------------------- cases


def request_case(config: str) -> Case:
    from django.core.handlers.wsgi import WSGIHandler

    handler = WSGIHandler()
    template = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": PATH,
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "testserver",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    statuses: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        statuses.append(status)

    def request() -> None:
        # A fresh environ and input stream per request, as a server makes them.
        environ = dict(template)
        environ["wsgi.input"] = io.BytesIO()
        body = handler(environ, start_response)
        try:
            for _ in body:
                pass
        finally:
            body.close()

    def once() -> tuple[str, bytes]:
        statuses.clear()
        environ = {**template, "wsgi.input": io.BytesIO()}
        body = handler(environ, start_response)
        try:
            content = b"".join(body)
        finally:
            body.close()
        return statuses[0], content

    _check(config, "request", once, ("200 OK", b"ok"))
    statuses.clear()
    # start_response appends to statuses: cleared before every batch, so it stays small.
    return Case("request()", {"request": request}, before=statuses.clear)


def select_case(config: str, *, reused: bool) -> Case:
    from django.db import connection

    def once() -> Any:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone()

    _check(config, "query", once, (1,))
    if reused:
        return Case('cursor.execute("SELECT 1")', {"cursor": connection.cursor()})
    return Case('connection.cursor().execute("SELECT 1")', {"connection": connection})


CASES: dict[str, Callable[[str], Case]] = {
    "django_request": request_case,
    "django_select": lambda config: select_case(config, reused=False),
    "django_select_reused": lambda config: select_case(config, reused=True),
    # The compat-mode rows time the same cases; only the configuration of ours differs.
    "django_request_compat": request_case,
    "django_select_compat": lambda config: select_case(config, reused=False),
}


def main() -> int:
    config = sys.argv[1] if len(sys.argv) > 1 else ""
    configure(config)
    hello = {
        "config": config,
        "django": version("django"),
        "django_prometheus": version("django-prometheus"),
        "keys": sorted(CASES),
    }

    def prepare(key: str, params: Mapping[str, Any], seconds: float) -> Case:
        return CASES[key](config)

    return serve(hello, prepare)


if __name__ == "__main__":
    sys.exit(main())
