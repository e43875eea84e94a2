"""Views for the Django app's tests: sync and async, streaming, failing, querying."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator

from django.core.cache import cache
from django.db import connection
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    JsonResponse,
    StreamingHttpResponse,
)
from django.template.response import TemplateResponse

from django_pytheus.metrics import get_metrics
from tests.django_app.testapp.models import Item

# Filled by views that tests inspect afterwards.
SEEN: dict[str, object] = {}


def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"hello")


def article(request: HttpRequest, year: int) -> HttpResponse:
    return HttpResponse(f"article {year}".encode())


def echo(request: HttpRequest) -> HttpResponse:
    return HttpResponse(request.body)


def status(request: HttpRequest, code: int) -> HttpResponse:
    return HttpResponse(b"", status=code)


def in_progress(request: HttpRequest) -> HttpResponse:
    gauge = get_metrics().requests_in_progress.labels(method=request.method)
    SEEN["in_progress"] = gauge.snapshot()
    return HttpResponse(b"")


def boom(request: HttpRequest) -> HttpResponse:
    raise ZeroDivisionError("boom")


class Abort(BaseException):
    """Not an Exception: Django's handler lets it through (as it does KeyboardInterrupt)."""


def abort(request: HttpRequest) -> HttpResponse:
    raise Abort


async def async_abort(request: HttpRequest) -> HttpResponse:
    raise Abort


async def async_hello(request: HttpRequest) -> HttpResponse:
    SEEN["async_thread"] = threading.get_ident()
    await asyncio.sleep(0)
    return HttpResponse(b"async hello")


async def async_boom(request: HttpRequest) -> HttpResponse:
    raise KeyError("async boom")


async def async_queries(request: HttpRequest) -> HttpResponse:
    count = await Item.objects.acount()
    names = [i.name async for i in Item.objects.all()]
    return JsonResponse({"count": count, "names": names})


def queries(request: HttpRequest, n: int) -> HttpResponse:
    with connection.cursor() as cursor:
        for _ in range(n):
            cursor.execute("SELECT 1")
    return HttpResponse(str(n).encode())


def orm(request: HttpRequest) -> HttpResponse:
    item = Item.objects.create(name="a", value=1)
    Item.objects.filter(pk=item.pk).update(value=2)
    names = list(Item.objects.values_list("name", flat=True))
    Item.objects.filter(pk=item.pk).delete()
    return HttpResponse(",".join(names).encode())


def chunks(n: int, size: int) -> Iterator[bytes]:
    for _ in range(n):
        yield b"x" * size


def stream(request: HttpRequest) -> StreamingHttpResponse:
    return StreamingHttpResponse(chunks(3, 1000))


def stream_queries(request: HttpRequest) -> StreamingHttpResponse:
    def rows() -> Iterator[bytes]:
        for _ in range(2):
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            yield b"row\n"

    return StreamingHttpResponse(rows())


async def async_chunks(n: int, size: int) -> AsyncIterator[bytes]:
    for _ in range(n):
        await asyncio.sleep(0)
        yield b"y" * size


async def async_stream(request: HttpRequest) -> StreamingHttpResponse:
    return StreamingHttpResponse(async_chunks(4, 500))


def file(request: HttpRequest) -> FileResponse:
    import io

    return FileResponse(io.BytesIO(b"z" * 2048), filename="z.bin")


def cache_view(request: HttpRequest) -> HttpResponse:
    cache.set("k", 0)
    found = cache.get("k", "default")
    missing = cache.get("nope", "default")
    return JsonResponse({"found": found, "missing": missing})


def template(request: HttpRequest) -> TemplateResponse:
    return TemplateResponse(request, "testapp/hello.html", {"who": "world"})


def not_found(request: HttpRequest) -> HttpResponse:
    raise Http404("nothing here")


def pid(request: HttpRequest) -> HttpResponseBase:
    """This process's id, after ``?sleep=`` seconds (so that concurrent requests spread)."""
    import os
    import time

    time.sleep(float(request.GET.get("sleep", 0)))
    return HttpResponse(str(os.getpid()).encode())
