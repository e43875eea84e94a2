"""The FastAPI application of pytheus 0.6.1's FastAPI page (docs/fastapi.md), with routes
that exercise the middleware: path parameters, a mounted sub-application, a failing view,
a streamed response. Served by uvicorn in ``test_fastapi.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, StreamingResponse

from pytheus.exposition import generate_metrics
from pytheus.middleware import PytheusMiddlewareASGI


def create_app() -> FastAPI:
    """A new application: its middleware defines the histograms, in the registry that is
    current when it serves its first request."""
    app = FastAPI()
    app.add_middleware(PytheusMiddlewareASGI)
    for path, methods, endpoint in ROUTES:
        app.add_api_route(path, endpoint, methods=methods)
    app.mount("/users", users)
    return app


async def pytheus_metrics() -> PlainTextResponse:
    return PlainTextResponse(generate_metrics())


users = FastAPI()


@users.get("/{name}/profile")
async def profile(name: str) -> dict[str, str]:
    return {"name": name}


async def item(item_id: int) -> dict[str, int]:
    return {"id": item_id}


async def upload(request: Request) -> dict[str, int]:
    return {"size": len(await request.body())}


async def boom() -> None:
    raise RuntimeError("the view failed")


async def stream() -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b"x" * 100

    return StreamingResponse(chunks(), media_type="text/plain")


ROUTES = [
    ("/metrics", ["GET"], pytheus_metrics),
    ("/items/{item_id}", ["GET"], item),
    ("/upload", ["POST"], upload),
    ("/boom", ["GET"], boom),
    ("/stream", ["GET"], stream),
]

app = create_app()
