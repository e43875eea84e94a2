"""PYTHEUS["COMPAT"] = "django_prometheus": django-prometheus 2.5's series, exact values.

tests/e2e/test_compat.py compares a whole site against django-prometheus itself through a
real Prometheus; these tests pin each series' label values and counts, one request at a time.
"""

from __future__ import annotations

import math
import threading

import pytest
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, connection, connections
from django.http import HttpResponse
from django.test import Client
from django.test.utils import override_settings

from django_pytheus.compat import BODY_BUCKETS, cache_backend_label
from django_pytheus.conf import COMPAT_LATENCY_BUCKETS, parse_settings
from django_pytheus.metrics import get_metrics
from django_pytheus.startup import setup
from tests.django_app.conftest import SettingsFactory, bucket_counts, restore_app, scrape, value
from tests.servers import promtool_check_metrics

COMPAT = "django_prometheus"


@pytest.fixture
def compat(pytheus_settings: SettingsFactory) -> None:
    pytheus_settings(COMPAT=COMPAT)


# --------------------------------------------------------------------------- settings


def test_off_by_default_and_no_series() -> None:
    assert parse_settings({}).compat is None
    Client().get("/hello/")
    names = scrape().names()
    assert not any(n.startswith("django_http_requests_total_by") for n in names)
    assert "django_http_requests_before_middlewares_total" not in names


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("django-prometheus", "Did you mean 'django_prometheus'?"),
        ("Django_Prometheus", "Did you mean 'django_prometheus'?"),
        ("prometheus_client", "Valid values: 'django_prometheus' or None."),
        (True, "True, which is not a compatibility mode"),
    ],
)
def test_bad_mode(raw: object, message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match="PYTHEUS\\['COMPAT'\\]") as info:
        parse_settings({"COMPAT": raw})
    assert message in str(info.value)


def test_django_prometheus_settings_keep_their_meaning() -> None:
    legacy = {"PROMETHEUS_METRIC_NAMESPACE": "shop", "PROMETHEUS_LATENCY_BUCKETS": [0.1, 1]}
    s = parse_settings({"COMPAT": COMPAT}, legacy=legacy).compat
    assert s is not None
    assert s.metric_name("django_x") == "shop_django_x"
    assert s.latency_buckets == (0.1, 1.0)
    # Not read at all without COMPAT.
    assert parse_settings({}, legacy={"PROMETHEUS_LATENCY_BUCKETS": "x"}).compat is None
    defaults = parse_settings({"COMPAT": COMPAT}).compat
    assert defaults is not None
    assert defaults.latency_buckets == COMPAT_LATENCY_BUCKETS
    assert defaults.latency_buckets[-1] == math.inf
    with pytest.raises(ImproperlyConfigured, match=r"PROMETHEUS_LATENCY_BUCKETS .* increasing"):
        parse_settings({"COMPAT": COMPAT}, legacy={"PROMETHEUS_LATENCY_BUCKETS": [1, 0.5]})
    with pytest.raises(ImproperlyConfigured, match="PROMETHEUS_METRIC_NAMESPACE"):
        parse_settings({"COMPAT": COMPAT}, legacy={"PROMETHEUS_METRIC_NAMESPACE": "my-app"})


def test_namespace_from_django_settings() -> None:
    try:
        with override_settings(PROMETHEUS_METRIC_NAMESPACE="shop", PYTHEUS={"COMPAT": COMPAT}):
            setup()
            Client().get("/hello/")
            parsed = scrape()
    finally:
        restore_app()
    assert value(parsed, "shop_django_http_requests_total_by_method_total", method="GET") == 1
    assert "django_http_requests_total_by_method_total" not in parsed.names()


# --------------------------------------------------------------------------- requests


@pytest.mark.usefixtures("compat")
def test_one_request() -> None:
    response = Client().get("/hello/")
    assert response.status_code == 200
    p = scrape()  # /metrics itself is not counted
    for name in (
        "django_http_requests_before_middlewares_total",
        "django_http_responses_before_middlewares_total",
        "django_http_requests_latency_including_middlewares_seconds_count",
    ):
        assert value(p, name) == 1, name
    assert value(p, "django_http_requests_total_by_method_total", method="GET") == 1
    assert value(p, "django_http_requests_total_by_transport_total", transport="http") == 1
    assert (
        value(
            p,
            "django_http_requests_total_by_view_transport_method_total",
            view="hello",
            transport="http",
            method="GET",
        )
        == 1
    )
    assert value(p, "django_http_responses_total_by_status_total", status="200") == 1
    assert (
        value(
            p,
            "django_http_responses_total_by_status_view_method_total",
            status="200",
            view="hello",
            method="GET",
        )
        == 1
    )
    assert value(p, "django_http_responses_total_by_charset_total", charset="utf-8") == 1
    assert (
        value(
            p,
            "django_http_requests_latency_seconds_by_view_method_count",
            view="hello",
            method="GET",
        )
        == 1
    )
    # Body sizes: "hello" is 5 bytes, in the bucket le=8; the request had no body.
    response_buckets = bucket_counts(p, "django_http_responses_body_total_bytes")
    assert response_buckets["4.0"] == 0
    assert response_buckets["8.0"] == 1
    assert bucket_counts(p, "django_http_requests_body_total_bytes")["0.0"] == 1
    assert value(p, "django_http_responses_body_total_bytes_sum") == 5
    # django-prometheus's buckets, exactly.
    assert len(response_buckets) == len(BODY_BUCKETS) + 1  # and +Inf
    latency = bucket_counts(
        p, "django_http_requests_latency_seconds_by_view_method", view="hello", method="GET"
    )
    assert [float(le) for le in latency] == list(COMPAT_LATENCY_BUCKETS)
    for zero in (
        "django_http_requests_unknown_latency_total",
        "django_http_requests_unknown_latency_including_middlewares_total",
        "django_http_ajax_requests_total",
        "django_http_responses_streaming_total",
    ):
        assert value(p, zero) == 0, zero
    # Our own metrics are still there.
    assert value(p, "django_http_requests_total", method="GET", view="/hello/", status="200") == 1


@pytest.mark.usefixtures("compat")
def test_unmatched_url_has_no_view() -> None:
    assert Client().get("/no/such/page/").status_code == 404
    p = scrape()
    assert (
        value(
            p,
            "django_http_responses_total_by_status_view_method_total",
            status="404",
            view="<unnamed view>",
            method="GET",
        )
        == 1
    )
    # process_view never ran: django-prometheus did not count it by view.
    assert not [
        k for k in p.samples if k[0] == "django_http_requests_total_by_view_transport_method_total"
    ]
    assert value(p, "django_http_requests_total_by_method_total", method="GET") == 1


@pytest.mark.usefixtures("compat")
def test_exceptions_raised_by_views() -> None:
    client = Client(raise_request_exception=False)
    assert client.get("/boom/").status_code == 500
    assert client.get("/not-found/").status_code == 404  # Http404 counts, as there
    p = scrape()
    assert value(p, "django_http_exceptions_total_by_type_total", type="ZeroDivisionError") == 1
    assert value(p, "django_http_exceptions_total_by_type_total", type="Http404") == 1
    assert value(p, "django_http_exceptions_total_by_view_total", view="boom") == 1
    assert value(p, "django_http_exceptions_total_by_view_total", view="not-found") == 1
    # Observed once per request (django-prometheus observed a failed request twice).
    assert (
        value(
            p,
            "django_http_requests_latency_seconds_by_view_method_count",
            view="boom",
            method="GET",
        )
        == 1
    )
    assert value(p, "django_http_responses_total_by_status_total", status="500") == 1
    # Ours counts only the unhandled one.
    assert value(p, "django_http_exceptions_total", view="/boom/", type="ZeroDivisionError") == 1
    assert not [
        k
        for k in p.samples
        if k[0] == "django_http_exceptions_total" and ("type", "Http404") in k[1]
    ]


@pytest.mark.usefixtures("compat")
def test_method_transport_ajax_and_bodies() -> None:
    client = Client()
    client.post("/echo/", data=b"x" * 100, content_type="application/octet-stream")
    client.get("/hello/", headers={"X-Requested-With": "XMLHttpRequest"}, secure=True)
    client.generic("BREW", "/hello/")
    p = scrape()
    assert value(p, "django_http_requests_total_by_method_total", method="POST") == 1
    assert value(p, "django_http_requests_total_by_method_total", method="<invalid method>") == 1
    assert value(p, "django_http_requests_total_by_transport_total", transport="https") == 1
    assert value(p, "django_http_requests_total_by_transport_total", transport="http") == 2
    assert value(p, "django_http_ajax_requests_total") == 1
    requests = bucket_counts(p, "django_http_requests_body_total_bytes")
    assert requests["64.0"] == 2  # the two GETs, no body
    assert requests["128.0"] == 3
    assert value(p, "django_http_requests_body_total_bytes_sum") == 100
    # No raw verb in any label, the latency histogram included.
    assert not any(("method", "BREW") in labels for _, labels in p.samples)
    assert (
        value(
            p,
            "django_http_requests_latency_seconds_by_view_method_count",
            view="hello",
            method="<invalid method>",
        )
        == 1
    )


@pytest.mark.usefixtures("compat")
def test_streaming_and_template_responses() -> None:
    client = Client()
    b"".join(client.get("/stream/").streaming_content)
    assert client.get("/template/").content == b"hello world\n"
    p = scrape()
    assert value(p, "django_http_responses_streaming_total") == 1
    # The streamed body is not observed, the template's is.
    assert value(p, "django_http_responses_body_total_bytes_count") == 1
    assert (
        value(
            p,
            "django_http_responses_total_by_templatename_total",
            templatename="testapp/hello.html",
        )
        == 1
    )


@pytest.mark.usefixtures("compat")
def test_a_response_compat_cannot_read_costs_only_its_series(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no name today")

    def view(request: object) -> HttpResponse:
        response = HttpResponse(b"fine")
        response.template_name = Unprintable()  # type: ignore[attr-defined]
        return response

    from django.test import RequestFactory

    from django_pytheus.middleware import PytheusMiddleware

    middleware = PytheusMiddleware(view)  # type: ignore[arg-type]
    for _ in range(2):
        response = middleware(RequestFactory().get("/hello/"))
        assert response.status_code == 200
    assert caplog.text.count("could not record a request in django-prometheus") == 1
    # Ours recorded both requests.
    assert (
        value(
            scrape(), "django_http_requests_total", method="GET", view="<unmatched>", status="200"
        )
        == 2
    )


@pytest.mark.usefixtures("compat")
def test_metrics_view_is_not_counted() -> None:
    for _ in range(3):
        scrape()
    p = scrape()
    assert value(p, "django_http_requests_before_middlewares_total") == 0
    assert not [k for k in p.samples if k[0] == "django_http_requests_total_by_method_total"]


# --------------------------------------------------------------------------- database


@pytest.mark.django_db
@pytest.mark.usefixtures("compat")
def test_statements_connections_and_errors() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.execute("CREATE TABLE compat_t (n INTEGER UNIQUE)")
        cursor.executemany("INSERT INTO compat_t VALUES (%s)", [(1,), (2,), (3,)])
        with pytest.raises(IntegrityError):
            cursor.execute("INSERT INTO compat_t VALUES (1)")
    p = scrape()
    db = {"alias": "default", "vendor": "sqlite"}
    assert value(p, "django_db_execute_total", **db) == 1 + 1 + 3 + 1
    assert value(p, "django_db_execute_many_total", **db) == 3
    assert value(p, "django_db_errors_total", type="IntegrityError", **db) == 1
    # With the default namespace, the duration histogram is ours: same name, a statement
    # label as well; its _count per alias and vendor is django-prometheus's.
    counts = [
        v
        for (name, labels), v in p.samples.items()
        if name == "django_db_query_duration_seconds_count" and dict(labels).items() >= db.items()
    ]
    assert sum(counts) == 4
    assert p.types["django_db_query_duration_seconds"] == "histogram"


@pytest.mark.django_db
def test_other_namespace_gets_its_own_duration_histogram(pytheus_settings: SettingsFactory) -> None:
    pytheus_settings(COMPAT=COMPAT, NAMESPACE="shop")
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    p = scrape()
    assert value(p, "django_db_query_duration_seconds_count", alias="default", vendor="sqlite") == 1
    assert (
        value(
            p,
            "shop_db_query_duration_seconds_count",
            alias="default",
            vendor="sqlite",
            statement="select",
        )
        == 1
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("compat")
def test_new_connections() -> None:
    def work() -> None:  # a thread's connection objects connect on first use
        try:
            with connections["default"].cursor() as cursor:
                cursor.execute("SELECT 1")
        finally:
            connections.close_all()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    p = scrape()
    assert value(p, "django_db_new_connections_total", alias="default", vendor="sqlite") >= 1
    assert value(p, "django_db_new_connections_total", alias="default", vendor="sqlite") == value(
        p, "django_db_connections_total", alias="default", vendor="sqlite"
    )


# --------------------------------------------------------------------------- caches


@pytest.mark.usefixtures("compat")
def test_cache_gets() -> None:
    cache = caches["default"]
    cache.set("zero", 0)
    cache.set("none", None)
    assert cache.get("zero", "d") == 0
    assert cache.get("none", "d") is None  # a cached None is a hit (a miss there)
    assert cache.get("missing", "d") == "d"
    cache.get_many(["zero", "missing"])  # not a get(): not counted, as there
    p = scrape()
    assert value(p, "django_cache_get_total", backend="locmem") == 3
    assert value(p, "django_cache_get_hits_total", backend="locmem") == 2
    assert value(p, "django_cache_get_misses_total", backend="locmem") == 1


@pytest.mark.parametrize(
    ("path", "label"),
    [
        ("django_redis.cache.RedisCache", "redis"),
        ("django.core.cache.backends.redis.RedisCache", "native_redis"),
        ("django.core.cache.backends.locmem.LocMemCache", "locmem"),
        ("django.core.cache.backends.filebased.FileBasedCache", "filebased"),
        ("django.core.cache.backends.memcached.PyMemcacheCache", "memcached"),
        ("django_prometheus.cache.backends.redis.RedisCache", "redis"),
        ("django.core.cache.backends.db.DatabaseCache", "database"),
        ("myproject.caches.Tiered", "tiered"),
    ],
)
def test_cache_backend_labels(path: str, label: str) -> None:
    assert cache_backend_label(path) == label


# --------------------------------------------------------------------------- exposition


@pytest.mark.django_db
@pytest.mark.usefixtures("compat")
def test_exposition_is_valid() -> None:
    client = Client(raise_request_exception=False)
    for path in ("/hello/", "/boom/", "/template/", "/nowhere/", "/cache/"):
        client.get(path)
    response = Client().get("/metrics")
    text = response.content.decode()
    # django-prometheus's names break two lint rules (a gauge named ..._total for the
    # migrations, counters named ..._total_by_..._total); the format itself is valid.
    promtool_check_metrics(text, lint=False)
    om = Client().get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    from tests.core.helpers import parse_openmetrics

    parsed = parse_openmetrics(om.content.decode())
    assert parsed.types["django_http_requests_total_by_method"] == "counter"
    assert get_metrics().compat is not None


@pytest.mark.django_db
def test_names_are_django_prometheus_whatever_counter_names_says(
    pytheus_settings: SettingsFactory,
) -> None:
    from pytheus.exposition import set_counter_names

    try:
        pytheus_settings(COMPAT=COMPAT, COUNTER_NAMES="as_given", MODEL_METRICS=["auth.Group"])
        Client().get("/hello/")
        p = scrape()
    finally:
        set_counter_names("total")  # process-wide: later tests expect the convention
    assert value(p, "django_http_requests_total_by_method_total", method="GET") == 1
    assert value(p, "django_http_requests_before_middlewares_total") == 1
    assert value(p, "django_model_inserts_total", model="auth.group") == 0
