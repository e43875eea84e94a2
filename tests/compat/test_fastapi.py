"""pytheus 0.6.1's FastAPI page (docs/fastapi.md): ``PytheusMiddlewareASGI``, with FastAPI's
TestClient and under a real uvicorn on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from pytheus.exposition import generate_metrics
from pytheus.middleware import PytheusMiddlewareASGI
from pytheus.registry import CollectorRegistry
from tests.compat.asgi_app import create_app
from tests.compat.conftest import text_scrape
from tests.core.helpers import Parsed, parse_text
from tests.servers import LOOPBACK, free_port

ROOT = Path(__file__).resolve().parents[2]


def _app() -> FastAPI:
    return create_app()


def _labels(route: str, status: str, method: str = "GET") -> dict[str, str]:
    return {"method": method, "route": route, "status_code": status}


def _check(parsed: Parsed) -> None:
    """What the requests of both tests below must have recorded."""
    count = "http_request_duration_seconds_count"
    assert parsed.value(count, _labels("/items/{item_id}", "200")) == 2.0
    assert parsed.value(count, _labels("/users/{name}/profile", "200")) == 1.0
    assert parsed.value(count, _labels("<unmatched>", "404")) == 1.0
    assert parsed.value(count, _labels("/boom", "500")) == 1.0
    assert parsed.value(count, _labels("/stream", "200")) == 1.0
    # Never the raw path: no series per item id or user name.
    assert not [n for n, labels in parsed.samples if ("route", "/items/1") in labels]
    assert not [n for n, labels in parsed.samples if ("route", "/users/ann/profile") in labels]
    upload = _labels("/upload", "200", "POST")
    assert parsed.value("http_request_size_bytes_sum", upload) == 1234.0
    assert parsed.value("http_response_size_bytes_sum", _labels("/stream", "200")) == 300.0
    assert parsed.value("http_response_size_bytes_count", _labels("/stream", "200")) == 1.0
    assert parsed.value("http_request_duration_seconds_count", _labels("/metrics", "200")) == 1.0


def _traffic(get: object, post: object) -> None:
    for path in ("/items/1", "/items/2", "/users/ann/profile", "/nope", "/boom", "/stream"):
        get(path)  # type: ignore[operator]
    post("/upload", content=b"u" * 1234)  # type: ignore[operator]


def test_fastapi_test_client() -> None:
    with TestClient(_app(), raise_server_exceptions=False) as client:
        _traffic(client.get, client.post)
        assert client.get("/metrics").status_code == 200
        text = client.get("/metrics").text  # the second scrape sees the first
    _check(parse_text(text))
    text_scrape()  # promtool and both parsers accept the exposition


def test_exceptions_are_recorded_and_reraised() -> None:
    client = TestClient(_app(), raise_server_exceptions=True)
    with pytest.raises(RuntimeError, match="the view failed"):
        client.get("/boom")
    parsed = text_scrape()
    assert parsed.value("http_request_duration_seconds_count", _labels("/boom", "500")) == 1.0


def test_plain_starlette_routes_and_mounts() -> None:
    async def hello(request: object) -> PlainTextResponse:
        return PlainTextResponse("hello")

    registry = CollectorRegistry()
    inner = Starlette(routes=[Route("/{page:int}", hello)])
    app = Starlette(routes=[Route("/hello/{name}", hello), Mount("/docs", app=inner)])
    app.add_middleware(PytheusMiddlewareASGI, registry=registry)
    client = TestClient(app)
    assert client.get("/hello/world").text == "hello"
    assert client.get("/docs/3").text == "hello"
    client.get("/websocket-free-404")
    parsed = parse_text(generate_metrics(registry))
    count = "http_request_duration_seconds_count"
    assert parsed.value(count, _labels("/hello/{name}", "200")) == 1.0
    assert parsed.value(count, _labels("/docs/{page}", "200")) == 1.0
    assert parsed.value(count, _labels("<unmatched>", "404")) == 1.0


def test_the_middleware_of_one_registry_shares_its_histograms() -> None:
    registry = CollectorRegistry()

    async def app(scope: object, receive: object, send: object) -> None:  # pragma: no cover
        pass

    first = PytheusMiddlewareASGI(app, registry=registry)
    second = PytheusMiddlewareASGI(app, registry=registry)
    assert first.http_request_duration_seconds is second.http_request_duration_seconds


def test_unknown_methods_are_bounded() -> None:
    with TestClient(_app()) as client:
        client.request("BREW", "/items/1")
    parsed = text_scrape()
    other = _labels("/items/{item_id}", "405", "other")
    assert parsed.value("http_request_duration_seconds_count", other) == 1.0


@pytest.fixture
def uvicorn_server(tmp_path: Path) -> Iterator[str]:
    """``uvicorn tests.compat.asgi_app:app`` on a free loopback port; its base URL."""
    port = free_port()
    log = (tmp_path / "uvicorn.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "tests.compat.asgi_app:app",
         "--host", LOOPBACK, "--port", str(port), "--log-level", "warning"],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    base = f"http://{LOOPBACK}:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/items/0", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                raise AssertionError(
                    f"uvicorn did not answer: {(tmp_path / 'uvicorn.log').read_text()}"
                )
            time.sleep(0.05)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


@pytest.mark.slow
def test_under_a_real_uvicorn(uvicorn_server: str) -> None:
    # A connection per request: uvicorn closes the one a failing view was served on.
    headers = {"Connection": "close"}
    with httpx.Client(base_url=uvicorn_server, timeout=10, headers=headers) as client:
        _traffic(client.get, client.post)
        client.get("/metrics")
        text = client.get("/metrics").text
    parsed = parse_text(text)
    # The readiness probe asked for /items/0 once more.
    items = _labels("/items/{item_id}", "200")
    assert parsed.value("http_request_duration_seconds_count", items) == 3.0
    parsed.samples[("http_request_duration_seconds_count", frozenset(items.items()))] = 2.0
    _check(parsed)
