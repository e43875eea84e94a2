"""``manage.py generate_traffic``: a bounded mix of requests to every demo view.

Two ways to send them::

    .venv/bin/python manage.py generate_traffic --url http://127.0.0.1:8000/ --requests 200
    .venv/bin/python manage.py generate_traffic --requests 50   # in-process, Django's test client

Over HTTP the requests go to a running server (loopback addresses only), each on a
connection of its own so that they spread over its worker processes, ``--concurrency``
at a time. In-process requests are recorded by this process: with the in-memory backend
those numbers end with the command, with the Redis backend they join the server's.

The mix is fixed by ``--seed``; the command stops after ``--requests`` requests or
``--timeout`` seconds, whichever comes first, and fails if a request could not be sent
or got a status its view never answers.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.http.request import validate_host
from django.test import Client

from demo_project.commands import manage_py
from pytheus.backends import MemoryBackend, get_backend

MAX_REQUESTS = 10_000
MAX_CONCURRENCY = 16
REQUEST_TIMEOUT = 10.0

# (name, weight, expected statuses). A failing view and a missing page are part of the mix.
MIX: list[tuple[str, int, frozenset[int]]] = [
    ("fast", 30, frozenset({200})),
    ("slow", 6, frozenset({200})),
    ("products", 8, frozenset({200})),
    ("products-fixed", 4, frozenset({200})),
    ("product", 10, frozenset({200})),
    ("async", 10, frozenset({200})),
    ("cached", 15, frozenset({200})),
    ("checkout", 10, frozenset({302, 409})),
    ("boom", 3, frozenset({500})),
    ("missing", 4, frozenset({404})),
]
EXPECTED = {name: statuses for name, _, statuses in MIX}
NOT_SENT = "not sent (--timeout)"


@dataclass(frozen=True)
class Request:
    kind: str
    method: str
    path: str
    form: dict[str, str] | None = None


def plan(count: int, product_ids: list[int], rng: random.Random) -> list[Request]:
    """``count`` requests drawn from :data:`MIX`."""
    kinds = rng.choices([m[0] for m in MIX], weights=[m[1] for m in MIX], k=count)
    out = []
    for kind in kinds:
        pk = rng.choice(product_ids) if product_ids else 1
        if kind == "products-fixed":
            out.append(Request(kind, "GET", "/products/?fixed=1"))
        elif kind == "product":
            out.append(Request(kind, "GET", f"/products/{pk}/"))
        elif kind == "slow":
            out.append(Request(kind, "GET", "/slow/?max=0.2"))  # keeps the run short
        elif kind == "missing":
            out.append(Request(kind, "GET", f"/no-such-page/{rng.randrange(1000)}/"))
        elif kind == "checkout":
            form = {
                "product": str(pk),
                "quantity": str(rng.randint(1, 3)),
                "payment": rng.choice(["card", "card", "transfer", "invoice"]),
            }
            out.append(Request(kind, "POST", "/checkout/", form))
        else:
            out.append(Request(kind, "GET", f"/{kind}/"))
    return out


def loopback_url(url: str) -> tuple[str, int, str]:
    """``(host, port, path prefix)`` of an ``http://`` URL on a loopback address."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise CommandError(f"--url {url!r} must be an http:// URL such as http://127.0.0.1:8000/.")
    host = parts.hostname
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise CommandError(
            f"--url {url!r}: this command sends traffic only to this machine's loopback "
            "addresses (127.0.0.1, ::1, localhost)."
        )
    return host, parts.port or 80, parts.path.rstrip("/")


class HttpSender:
    """Sends requests to a running server, a connection per request."""

    def __init__(self, url: str) -> None:
        self.host, self.port, self.prefix = loopback_url(url)
        self.csrf_token = ""

    def __call__(self, req: Request) -> int:
        headers = {"Connection": "close", "Host": f"{self.host}:{self.port}"}
        if ":" in self.host:
            headers["Host"] = f"[{self.host}]:{self.port}"
        body = None
        if req.form is not None:
            body = urlencode(req.form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            # Django's CSRF check: the cookie and the header must carry the same token.
            headers["Cookie"] = f"{settings.CSRF_COOKIE_NAME}={self.csrf_token}"
            headers["X-CSRFToken"] = self.csrf_token
        status, _, _ = self.send(req.method, req.path, body, headers)
        return status

    def send(
        self, method: str, path: str, body: str | None, headers: dict[str, str]
    ) -> tuple[int, bytes, list[tuple[str, str]]]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=REQUEST_TIMEOUT)
        try:
            conn.request(method, self.prefix + path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.read(), response.getheaders()
        finally:
            conn.close()

    def wait_until_up(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.send("GET", "/fast/", None, {"Connection": "close"})
                return
            except OSError as exc:
                if time.monotonic() >= deadline:
                    raise CommandError(
                        f"No server answered at {self.host}:{self.port} within {timeout:g} s "
                        f"({exc}). Start it first: make demo, or {manage_py('runserver')}."
                    ) from None
            time.sleep(0.2)

    def prepare(self) -> list[int]:
        """Get a CSRF token (from the index page's form) and the product ids."""
        status, _, headers = self.send("GET", "/", None, {"Connection": "close"})
        if status != 200:
            raise CommandError(f"GET / answered {status}; is this the demo project?")
        cookies: SimpleCookie = SimpleCookie()
        for name, value in headers:
            if name.lower() == "set-cookie":
                cookies.load(value)
        if settings.CSRF_COOKIE_NAME in cookies:
            self.csrf_token = cookies[settings.CSRF_COOKIE_NAME].value
        status, body, _ = self.send("GET", "/products/?fixed=1", None, {"Connection": "close"})
        if status != 200:
            raise CommandError(
                f"GET /products/ answered {status}: has the database been set up? Run "
                f"{manage_py('demo_setup')} first."
            )
        return [p["id"] for p in json.loads(body)["products"]]


class ClientSender:
    """Sends requests through Django's test client, in this process."""

    def __init__(self) -> None:
        host = next(
            (h for h in ("127.0.0.1", "localhost") if validate_host(h, settings.ALLOWED_HOSTS)),
            None,
        )
        if host is None:
            raise CommandError("DEMO_ALLOWED_HOSTS must allow 127.0.0.1 for in-process traffic.")
        self.client = Client(raise_request_exception=False, HTTP_HOST=host)

    def __call__(self, req: Request) -> int:
        if req.method == "POST":
            return self.client.post(req.path, req.form or {}).status_code
        return self.client.get(req.path).status_code

    def prepare(self) -> list[int]:
        response = self.client.get("/products/?fixed=1")
        if response.status_code != 200:
            raise CommandError(
                f"GET /products/ answered {response.status_code}: has the database been set "
                f"up? Run {manage_py('demo_setup')} first."
            )
        return [p["id"] for p in response.json()["products"]]


class Command(BaseCommand):
    help = (
        "Send a bounded mix of requests to the demo's views (over HTTP on loopback, or in-process)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--requests", type=int, default=200, help="how many (default 200)")
        parser.add_argument(
            "--url", help="a running server on a loopback address, e.g. http://127.0.0.1:8000/"
        )
        parser.add_argument(
            "--concurrency", type=int, default=4, help="requests in flight over HTTP (default 4)"
        )
        parser.add_argument(
            "--wait", type=float, default=0.0, help="seconds to wait for the server to answer"
        )
        parser.add_argument(
            "--timeout", type=float, default=120.0, help="stop sending after this many seconds"
        )
        parser.add_argument("--seed", type=int, default=1, help="random seed of the mix")

    def handle(self, *args: Any, **options: Any) -> None:
        count = options["requests"]
        if not 1 <= count <= MAX_REQUESTS:
            raise CommandError(f"--requests must be between 1 and {MAX_REQUESTS}.")
        concurrency = options["concurrency"]
        if not 1 <= concurrency <= MAX_CONCURRENCY:
            raise CommandError(f"--concurrency must be between 1 and {MAX_CONCURRENCY}.")
        sender: Callable[[Request], int]
        if options["url"]:
            http_sender = HttpSender(options["url"])
            http_sender.wait_until_up(options["wait"])
            ids = http_sender.prepare()
            sender, where = http_sender, options["url"]
        else:
            client_sender = ClientSender()
            ids = client_sender.prepare()
            sender, where, concurrency = client_sender, "this process (test client)", 1
        requests = plan(count, ids, random.Random(options["seed"]))
        deadline = time.monotonic() + options["timeout"]
        started = time.monotonic()

        def send(req: Request) -> tuple[Request, int | str]:
            if time.monotonic() >= deadline:
                return req, NOT_SENT
            try:
                return req, sender(req)
            except OSError as exc:
                return req, f"{type(exc).__name__}: {exc}"

        if concurrency == 1:
            results = [send(r) for r in requests]
        else:
            with ThreadPoolExecutor(concurrency) as pool:
                results = list(pool.map(send, requests))
        elapsed = time.monotonic() - started
        self._report(results, where, elapsed)

    def _report(self, results: list[tuple[Request, int | str]], where: str, elapsed: float) -> None:
        tally: Counter[tuple[str, str, int | str]] = Counter()
        problems = []
        for req, outcome in results:
            path = "/products/<pk>/" if req.kind == "product" else req.path.split("?")[0]
            if req.kind == "missing":
                path = "/no-such-page/.../"
            tally[(req.method, path, outcome)] += 1
            if outcome != NOT_SENT and outcome not in EXPECTED[req.kind]:
                problems.append(f"{req.method} {req.path}: {outcome}")
        sent = sum(1 for _, o in results if isinstance(o, int))
        self.stdout.write(f"{sent} requests to {where} in {elapsed:.1f} s:")
        for (method, path, outcome), n in sorted(tally.items(), key=str):
            self.stdout.write(f"  {method:<5}{path:<22}{n:>5} x {outcome}")
        if where.startswith("this process") and isinstance(get_backend(), MemoryBackend):
            self.stdout.write(
                "Recorded by this process's in-memory backend, which ends with this command; "
                "to see the numbers in a server's /metrics, send them there with --url."
            )
        if problems:
            shown = "\n  ".join(problems[:10])
            raise CommandError(f"{len(problems)} requests went wrong:\n  {shown}")
