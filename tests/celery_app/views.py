"""Views that publish tasks, as a site's views do (``delay()``)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from tests.celery_app import tasks, thirdparty

# As a project's package does (proj/__init__.py): the app is loaded with the site, so
# that delay() publishes to its broker.
from tests.celery_app.celery import app

KINDS = {
    "ok": lambda: tasks.ok.delay(secret="s3cret-argument"),
    "fail": tasks.fail.delay,
    "retry": tasks.retry_once.delay,
    "slow": lambda: tasks.slow.delay(0.3),
}


def enqueue(request: HttpRequest) -> HttpResponse:
    """``?kind=ok&n=10``: publish n tasks of that kind."""
    kind = request.GET["kind"]
    n = int(request.GET.get("n", "1"))
    if kind == "block":
        tasks.block.delay(request.GET["flag"])
    elif kind == "expired":
        for _ in range(n):
            tasks.ok.apply_async(kwargs={"secret": "x"}, expires=-1.0)
    elif kind == "unregistered":
        app.send_task("tests.celery_app.tasks.no_such_task")
    else:
        for _ in range(n):
            KINDS[kind]()
    return HttpResponse(f"{n}\n")


def job(request: HttpRequest) -> HttpResponse:
    """``?kind=a``: one job of the third-party library; answers with this process's pid."""
    return HttpResponse(str(thirdparty.do_job(request.GET.get("kind", "a"), 100)))
