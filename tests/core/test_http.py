"""Serving metrics without a framework: the WSGI app and start_http_server()."""

from __future__ import annotations

import gzip
import http.client
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest

from pytheus.backends import load_backend
from pytheus.exposition import (
    OPENMETRICS_CONTENT_TYPE,
    PROMETHEUS_CONTENT_TYPE,
    make_wsgi_app,
    start_http_server,
)
from pytheus.metrics import Counter, Histogram
from pytheus.registry import CollectorRegistry
from tests.core.helpers import parse_openmetrics, parse_text
from tests.core.sample_backends import UnavailableBackend
from tests.servers import promtool_check_metrics

PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


def _populate() -> None:
    Counter("requests", "Requests.", required_labels=["code"]).labels(code=200).inc(3)
    Histogram("latency_seconds", "Latency.", buckets=[0.1]).observe(0.05)


# ---------------------------------------------------------------------------- WSGI, in process


class Response:
    def __init__(self, app: Callable[..., Any], **environ: str) -> None:
        env: dict[str, Any] = dict(environ)
        setup_testing_defaults(env)
        self.status = ""
        self.headers: dict[str, str] = {}

        def start_response(status: str, headers: list[tuple[str, str]]) -> None:
            self.status = status
            self.headers = dict(headers)

        self.body = b"".join(app(env, start_response))


def test_wsgi_get_head_and_405(registry: CollectorRegistry) -> None:
    _populate()
    app = make_wsgi_app()  # REGISTRY, which points at this test's registry
    get = Response(app, PATH_INFO="/metrics")
    assert get.status == "200 OK"
    assert get.headers["Content-Type"] == PROMETHEUS_CONTENT_TYPE
    assert get.headers["Content-Length"] == str(len(get.body))
    promtool_check_metrics(get.body.decode())
    assert parse_text(get.body.decode()).value("requests_total", {"code": "200"}) == 3
    head = Response(app, REQUEST_METHOD="HEAD")
    assert head.status == "200 OK"
    assert head.body == b""
    assert head.headers["Content-Length"] == str(len(get.body))
    for method in ("POST", "PUT", "DELETE"):
        refused = Response(app, REQUEST_METHOD=method)
        assert refused.status == "405 Method Not Allowed"
        assert refused.headers["Allow"] == "GET, HEAD"


def test_wsgi_negotiation_gzip_and_name_filter(registry: CollectorRegistry) -> None:
    _populate()
    app = make_wsgi_app(registry)
    om = Response(
        app,
        HTTP_ACCEPT=PROMETHEUS_ACCEPT,
        HTTP_ACCEPT_ENCODING="gzip",
        QUERY_STRING="name[]=latency_seconds_bucket",
    )
    assert om.status == "200 OK"
    assert om.headers["Content-Type"] == OPENMETRICS_CONTENT_TYPE
    assert om.headers["Content-Encoding"] == "gzip"
    parsed = parse_openmetrics(gzip.decompress(om.body).decode())
    assert set(parsed.types) == {"latency_seconds"}
    both = Response(app, QUERY_STRING="name%5B%5D=requests_total&name%5B%5D=latency_seconds_count")
    assert set(parse_text(both.body.decode()).types) == {"requests", "latency_seconds"}


def test_wsgi_answers_503_when_the_backend_is_unavailable(registry: CollectorRegistry) -> None:
    _populate()
    load_backend(UnavailableBackend)
    response = Response(make_wsgi_app(registry))
    assert response.status == "503 Service Unavailable"
    assert response.headers["Retry-After"] == "5"
    assert b"127.0.0.1:1 is unreachable" in response.body


# ---------------------------------------------------------------------------- real servers


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.fixture(
    scope="module",
    params=[
        "127.0.0.1",
        pytest.param(
            "::1",
            marks=pytest.mark.skipif(not _ipv6_loopback(), reason="::1 cannot be bound here"),
        ),
    ],
)
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    """A real server per address family, shared by this module's tests: it serves
    ``REGISTRY``, which each test points at its own registry."""
    addr: str = request.param
    srv, thread = start_http_server(0, addr=addr)
    try:
        assert thread.daemon
        yield addr, srv.server_port
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=10)
    assert not thread.is_alive()


def _request(
    server: tuple[str, int], method: str = "GET", path: str = "/metrics", **headers: str
) -> tuple[int, dict[str, str], bytes]:
    addr, port = server
    conn = http.client.HTTPConnection(addr, port, timeout=10)
    try:
        conn.request(method, path, headers={k.replace("_", "-"): v for k, v in headers.items()})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_server_get_head_post(server: tuple[str, int]) -> None:
    _populate()
    status, headers, body = _request(server)
    assert status == 200
    assert headers["Content-Type"] == PROMETHEUS_CONTENT_TYPE
    promtool_check_metrics(body.decode())
    assert parse_text(body.decode()).value("latency_seconds_count") == 1
    status, headers, head_body = _request(server, "HEAD")
    assert (status, head_body) == (200, b"")
    assert headers["Content-Length"] == str(len(body))
    status, headers, _ = _request(server, "POST")
    assert status == 405
    assert headers["Allow"] == "GET, HEAD"


def test_server_accept_gzip_and_name_filter(server: tuple[str, int]) -> None:
    _populate()
    status, headers, body = _request(
        server,
        path="/metrics?name[]=requests_total",
        Accept=PROMETHEUS_ACCEPT,
        Accept_Encoding="gzip",
    )
    assert status == 200
    assert headers["Content-Type"] == OPENMETRICS_CONTENT_TYPE
    assert headers["Content-Encoding"] == "gzip"
    parsed = parse_openmetrics(gzip.decompress(body).decode())
    assert parsed.samples == {("requests_total", frozenset({("code", "200")})): 3.0}


def test_server_answers_concurrent_scrapes(server: tuple[str, int]) -> None:
    _populate()
    results: list[int] = []
    lock = threading.Lock()

    def scrape() -> None:
        status, _, _ = _request(server)
        with lock:
            results.append(status)

    threads = [threading.Thread(target=scrape) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert results == [200] * 8


def test_server_answers_503_when_the_backend_is_unavailable(server: tuple[str, int]) -> None:
    _populate()
    load_backend(UnavailableBackend)
    status, headers, body = _request(server)
    assert status == 503
    assert headers["Retry-After"] == "5"
    assert b"unreachable" in body
