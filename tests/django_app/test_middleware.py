"""PytheusMiddleware: every request metric, with exact values, under WSGI and ASGI."""

from __future__ import annotations

import threading
from wsgiref.util import FileWrapper, setup_testing_defaults

import pytest
from asgiref.sync import async_to_sync, iscoroutinefunction
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.wsgi import WSGIHandler
from django.test import AsyncClient, Client
from django.test.utils import override_settings

from django_pytheus.middleware import PytheusMiddleware
from tests.django_app.conftest import bucket_counts, scrape, value
from tests.django_app.testapp import views

GET_HELLO = {"method": "GET", "view": "/hello/"}


def test_sync_view_every_request_metric() -> None:
    client = Client()
    for _ in range(3):
        assert client.get("/hello/").content == b"hello"
    p = scrape()
    assert value(p, "django_http_requests_total", **GET_HELLO, status="200") == 3
    assert value(p, "django_http_request_duration_seconds_count", **GET_HELLO) == 3
    assert 0 < value(p, "django_http_request_duration_seconds_sum", **GET_HELLO) < 3
    assert value(p, "django_http_request_size_bytes_count", **GET_HELLO) == 3
    assert value(p, "django_http_request_size_bytes_sum", **GET_HELLO) == 0
    assert value(p, "django_http_response_size_bytes_count", **GET_HELLO) == 3
    assert value(p, "django_http_response_size_bytes_sum", **GET_HELLO) == 15
    assert bucket_counts(p, "django_http_response_size_bytes", **GET_HELLO)["256.0"] == 3
    assert value(p, "django_db_queries_per_request_count", view="/hello/") == 3
    assert value(p, "django_db_queries_per_request_sum", view="/hello/") == 0
    assert value(p, "django_http_requests_in_progress", method="GET") == 0
    # Nothing else was recorded: no exception, no other view (the scrape is excluded).
    assert not any(name == "django_http_exceptions_total" for name, _ in p.samples)
    views_seen = {dict(labels).get("view") for name, labels in p.samples if "http" in name}
    assert views_seen == {"/hello/", None}


def test_view_label_is_the_route_pattern() -> None:
    client = Client()
    client.get("/articles/2024/")
    client.get("/articles/1999/")
    client.get("/old/2001/")
    client.get("/")
    p = scrape()
    labels = {"method": "GET", "status": "200"}
    assert value(p, "django_http_requests_total", view="/articles/<int:year>/", **labels) == 2
    assert value(p, "django_http_requests_total", view="/^old/(?P<year>[0-9]{4})/$", **labels) == 1
    assert value(p, "django_http_requests_total", view="/", **labels) == 1


def test_view_label_can_be_the_view_name(pytheus_settings) -> None:
    pytheus_settings(VIEW_LABEL="view_name")
    Client().get("/articles/2024/")
    Client().get("/echo/")  # no name: Django's dotted path of the function
    p = scrape()
    labels = {"method": "GET", "status": "200"}
    assert value(p, "django_http_requests_total", view="article", **labels) == 1
    echo = "tests.django_app.testapp.views.echo"
    assert value(p, "django_http_requests_total", view=echo, **labels) == 1


def test_unmatched_urls_share_one_series() -> None:
    client = Client()
    for i in range(5):
        assert client.get(f"/scanner/{i}/wp-login.php").status_code == 404
    p = scrape()
    assert (
        value(p, "django_http_requests_total", method="GET", view="<unmatched>", status="404") == 5
    )
    assert not [k for k in p.samples if "wp-login" in str(k)]


def test_unknown_methods_are_folded() -> None:
    client = Client()
    client.generic("BREW", "/hello/")
    client.generic("PROPFIND", "/hello/")
    client.delete("/hello/")
    client.head("/hello/")
    p = scrape()
    assert value(p, "django_http_requests_total", method="other", view="/hello/", status="200") == 2
    assert (
        value(p, "django_http_requests_total", method="DELETE", view="/hello/", status="200") == 1
    )
    assert value(p, "django_http_requests_total", method="HEAD", view="/hello/", status="200") == 1
    assert value(p, "django_http_requests_in_progress", method="other") == 0


def test_status_is_a_label() -> None:
    client = Client()
    client.get("/status/418/")
    client.get("/status/204/")
    p = scrape()
    view = "/status/<int:code>/"
    assert value(p, "django_http_requests_total", method="GET", view=view, status="418") == 1
    assert value(p, "django_http_requests_total", method="GET", view=view, status="204") == 1
    assert value(p, "django_http_request_duration_seconds_count", method="GET", view=view) == 2


def test_in_progress_counts_the_request_being_answered() -> None:
    Client().get("/in-progress/")
    assert views.SEEN["in_progress"] == 1.0
    assert value(scrape(), "django_http_requests_in_progress", method="GET") == 0


def test_request_and_response_sizes() -> None:
    body = b"b" * 3000
    Client().post("/echo/", data=body, content_type="application/octet-stream")
    p = scrape()
    labels = {"method": "POST", "view": "/echo/"}
    assert value(p, "django_http_request_size_bytes_sum", **labels) == 3000
    assert value(p, "django_http_response_size_bytes_sum", **labels) == 3000
    buckets = bucket_counts(p, "django_http_request_size_bytes", **labels)
    assert buckets["1024.0"] == 0
    assert buckets["4096.0"] == 1


def test_exception_in_a_view() -> None:
    response = Client(raise_request_exception=False).get("/boom/")
    assert response.status_code == 500
    p = scrape()
    assert value(p, "django_http_requests_total", method="GET", view="/boom/", status="500") == 1
    assert value(p, "django_http_exceptions_total", view="/boom/", type="ZeroDivisionError") == 1


def test_exception_in_another_middleware() -> None:
    response = Client(raise_request_exception=False).get("/hello/?fail-in-middleware")
    assert response.status_code == 500
    p = scrape()
    # The middleware failed before the URL was resolved.
    labels = {"view": "<unmatched>"}
    assert value(p, "django_http_requests_total", method="GET", status="500", **labels) == 1
    assert value(p, "django_http_exceptions_total", type="MiddlewareError", **labels) == 1
    assert value(p, "django_http_requests_in_progress", method="GET") == 0


def test_http_errors_are_not_exceptions() -> None:
    Client().get("/nowhere/")
    p = scrape()
    assert not any(name == "django_http_exceptions_total" for name, _ in p.samples)


@override_settings(DEBUG_PROPAGATE_EXCEPTIONS=True)
def test_exception_that_escapes_the_handler_is_counted_once() -> None:
    with pytest.raises(ZeroDivisionError):
        Client().get("/boom/")
    p = scrape()
    assert value(p, "django_http_requests_total", method="GET", view="/boom/", status="500") == 1
    assert value(p, "django_http_exceptions_total", view="/boom/", type="ZeroDivisionError") == 1
    assert value(p, "django_http_requests_in_progress", method="GET") == 0


def test_base_exception_escaping_the_handler() -> None:
    with pytest.raises(views.Abort):
        Client().get("/abort/")

    async def run() -> None:
        await AsyncClient().get("/async/abort/")

    with pytest.raises(views.Abort):
        async_to_sync(run)()
    p = scrape()
    for view in ("/abort/", "/async/abort/"):
        assert value(p, "django_http_requests_total", method="GET", view=view, status="500") == 1
        assert value(p, "django_http_exceptions_total", view=view, type="Abort") == 1
    assert value(p, "django_http_requests_in_progress", method="GET") == 0


@override_settings(MIDDLEWARE=["django_pytheus.middleware.PytheusMiddleware"])
def test_response_size_without_content_length() -> None:
    response = Client().get("/hello/")
    assert not response.has_header("Content-Length")  # no CommonMiddleware here
    assert value(scrape(), "django_http_response_size_bytes_sum", method="GET", view="/hello/") == 5


def test_the_metrics_view_is_excluded_by_default() -> None:
    client = Client()
    for _ in range(3):
        scrape(client)

    async def run() -> int:  # the ASGI path skips it too
        return (await AsyncClient().get("/metrics")).status_code

    assert async_to_sync(run)() == 200
    p = scrape(client)
    assert not [k for k in p.samples if k[0] == "django_http_requests_total"]
    assert not [k for k in p.samples if k[0] == "django_http_requests_in_progress"]


def test_excluded_views_by_name_or_label(pytheus_settings) -> None:
    pytheus_settings(EXCLUDE_VIEWS=["hello", "/articles/<int:year>/"])
    client = Client()
    client.get("/hello/")
    client.get("/articles/2020/")
    client.get("/metrics")  # no longer excluded
    client.get("/status/200/")
    p = scrape()
    seen = {
        dict(labels)["view"] for name, labels in p.samples if name == "django_http_requests_total"
    }
    assert seen == {"/metrics", "/status/<int:code>/"}


# ----------------------------------------------------------------------------- streaming


def test_streaming_response_is_recorded_when_closed() -> None:
    response = Client().get("/stream/")
    assert response.streaming
    # Not yet: the stream is still open, and the request still in progress.
    p = scrape()
    assert not [k for k in p.samples if k[0] == "django_http_requests_total"]
    assert value(p, "django_http_requests_in_progress", method="GET") == 1
    assert b"".join(response.streaming_content) == b"x" * 3000  # the client closes at the end
    p = scrape()
    labels = {"method": "GET", "view": "/stream/"}
    assert value(p, "django_http_requests_total", status="200", **labels) == 1
    assert value(p, "django_http_response_size_bytes_sum", **labels) == 3000
    assert value(p, "django_http_request_duration_seconds_count", **labels) == 1
    assert value(p, "django_http_requests_in_progress", method="GET") == 0


@pytest.mark.django_db  # response.close() sends request_finished, which checks connections
def test_stream_closed_early_counts_what_was_sent() -> None:
    response = Client().get("/stream/")
    first = next(iter(response.streaming_content))
    assert len(first) == 1000
    response.close()
    response.close()  # recorded once
    p = scrape()
    labels = {"method": "GET", "view": "/stream/"}
    assert value(p, "django_http_requests_total", status="200", **labels) == 1
    assert value(p, "django_http_response_size_bytes_sum", **labels) == 1000


@pytest.mark.django_db
def test_queries_made_while_streaming_count_for_the_request() -> None:
    response = Client().get("/stream/queries/")
    assert b"".join(response.streaming_content) == b"row\nrow\n"
    p = scrape()
    assert value(p, "django_db_queries_per_request_sum", view="/stream/queries/") == 2


def test_async_streaming_response() -> None:
    async def run() -> bytes:
        response = await AsyncClient().get("/async/stream/")
        assert response.is_async
        return b"".join([chunk async for chunk in response.streaming_content])

    assert async_to_sync(run)() == b"y" * 2000
    p = scrape()
    labels = {"method": "GET", "view": "/async/stream/"}
    assert value(p, "django_http_requests_total", status="200", **labels) == 1
    assert value(p, "django_http_response_size_bytes_sum", **labels) == 2000


@pytest.mark.django_db  # the WSGI handler checks connections at request start and end
def test_file_response_is_left_for_sendfile() -> None:
    # Through the WSGI handler itself (the test client wraps every stream): a file
    # response must still reach the server's wsgi.file_wrapper (sendfile).
    environ: dict[str, object] = {}
    setup_testing_defaults(environ)
    environ.update(PATH_INFO="/file/", REQUEST_METHOD="GET")
    environ["wsgi.file_wrapper"] = FileWrapper
    statuses = []
    result = WSGIHandler()(environ, lambda status, headers, exc_info=None: statuses.append(status))
    assert statuses == ["200 OK"]
    assert isinstance(result, FileWrapper)
    assert b"".join(result) == b"z" * 2048
    result.close()
    p = scrape()
    labels = {"method": "GET", "view": "/file/"}
    assert value(p, "django_http_requests_total", status="200", **labels) == 1
    assert value(p, "django_http_response_size_bytes_sum", **labels) == 2048


# ----------------------------------------------------------------------------- ASGI


def test_async_view_through_asgi() -> None:
    client = AsyncClient()

    async def run() -> None:
        for _ in range(2):
            response = await client.get("/async/")
            assert response.content == b"async hello"

    async_to_sync(run)()
    p = scrape()
    labels = {"method": "GET", "view": "/async/"}
    assert value(p, "django_http_requests_total", status="200", **labels) == 2
    assert value(p, "django_http_response_size_bytes_sum", **labels) == 22
    assert value(p, "django_http_requests_in_progress", method="GET") == 0


def test_async_view_exception() -> None:
    async def run() -> int:
        response = await AsyncClient(raise_request_exception=False).get("/async/boom/")
        return response.status_code

    assert async_to_sync(run)() == 500
    p = scrape()
    assert value(p, "django_http_exceptions_total", view="/async/boom/", type="KeyError") == 1


def test_sync_view_through_asgi() -> None:
    async def run() -> int:
        return (await AsyncClient().get("/hello/")).status_code

    assert async_to_sync(run)() == 200
    assert value(scrape(), "django_http_requests_total", **GET_HELLO, status="200") == 1


@pytest.mark.django_db(transaction=True)
def test_async_orm_queries_count_for_the_request() -> None:
    async def run() -> dict[str, object]:
        return (await AsyncClient().get("/async/queries/")).json()

    assert async_to_sync(run)() == {"count": 0, "names": []}
    p = scrape()
    assert value(p, "django_db_queries_per_request_sum", view="/async/queries/") == 2


def outermost_middleware(handler: ASGIHandler | WSGIHandler) -> object:
    # load_middleware() wraps each instance with convert_exception_to_response(), which
    # keeps it as __wrapped__; an adapted (thread-hopping) chain would not be ours.
    return getattr(handler._middleware_chain, "__wrapped__", None)


def test_no_thread_hop_under_asgi() -> None:
    handler = ASGIHandler()  # loads the middleware chain as under a real ASGI server
    ours = outermost_middleware(handler)
    assert isinstance(ours, PytheusMiddleware)
    assert iscoroutinefunction(ours)
    assert iscoroutinefunction(ours.get_response)

    async def run() -> None:
        views.SEEN["loop_thread"] = threading.get_ident()
        await AsyncClient().get("/async/")

    async_to_sync(run)()
    # The async view ran on the event loop's thread, not in a worker thread.
    assert views.SEEN["async_thread"] == views.SEEN["loop_thread"]


def test_sync_chain_under_wsgi() -> None:
    ours = outermost_middleware(WSGIHandler())
    assert isinstance(ours, PytheusMiddleware)
    assert not iscoroutinefunction(ours)
