"""Views that exercise every series django-prometheus exports."""

from __future__ import annotations

from collections.abc import Iterator

from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.template.response import TemplateResponse

from tests.e2e.compat_site.models import Note


def fast(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"ok": True})


def echo(request: HttpRequest) -> HttpResponse:
    return HttpResponse(request.body)


def page(request: HttpRequest) -> TemplateResponse:
    return TemplateResponse(request, "compat_site/page.html", {"title": "hello"})


def boom(request: HttpRequest) -> HttpResponse:
    raise ValueError("boom")


def missing(request: HttpRequest) -> HttpResponse:
    raise Http404("no such thing")


def notes(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        note = Note.objects.create(text=request.POST["text"])
        return JsonResponse({"id": note.pk}, status=201)
    return JsonResponse({"notes": list(Note.objects.values_list("text", flat=True))})


def note(request: HttpRequest, pk: int) -> HttpResponse:
    item = Note.objects.get(pk=pk)
    if request.method == "DELETE":
        item.delete()
        return HttpResponse(status=204)
    item.text = request.POST["text"]
    item.save()
    return JsonResponse({"id": item.pk})


def cached(request: HttpRequest) -> HttpResponse:
    value = cache.get("compat:value")
    if value is None:
        cache.set("compat:value", "computed", 300)
    return JsonResponse({"hit": value is not None})


def stream(request: HttpRequest) -> StreamingHttpResponse:
    def chunks() -> Iterator[bytes]:
        for _ in range(3):
            yield b"x" * 100

    return StreamingHttpResponse(chunks())


def bulk(request: HttpRequest) -> HttpResponse:
    with connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO compat_site_note (text) VALUES (%s)",
            [(f"bulk-{request.GET['n']}-{i}",) for i in range(4)],
        )
    return HttpResponse(b"ok")


def db_error(request: HttpRequest) -> HttpResponse:
    try:
        with transaction.atomic():
            Note.objects.create(text="duplicate")
            Note.objects.create(text="duplicate")
    except IntegrityError:
        return HttpResponse(b"refused", status=409)
    return HttpResponse(b"?")
