"""The demo project: what ``make demo`` runs before the server, and what its views record.

Each test runs manage.py in processes of its own with the demo's settings and a
temporary SQLite database, without starting a server.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.helpers import ROOT, demo_env, django_shell, manage
from tests.servers import free_port

CLEAN = "System check identified no issues (0 silenced)."
PASSWORD = re.compile(r"user 'admin', password '([^']+)' \(generated now, shown only this once\)")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return demo_env(tmp_path / "demo.sqlite3")


@pytest.fixture
def ready(env: dict[str, str]) -> dict[str, str]:
    """The environment of a demo whose database ``demo_setup`` has prepared."""
    manage(env, "demo_setup")
    return env


def test_check_is_clean(env: dict[str, str]) -> None:
    result = manage(env, "check")
    assert CLEAN in result.stdout
    assert result.stderr == ""


def test_check_is_clean_with_redis_configured(env: dict[str, str]) -> None:
    # Start-up does no network I/O: a Redis that is not there does not matter to check.
    result = manage({**env, "PYTHEUS_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}, "check")
    assert CLEAN in result.stdout


def test_make_demo_runs_these_commands() -> None:
    result = subprocess.run(
        ["make", "-n", "demo"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    commands = result.stdout
    setup = commands.index("manage.py demo_setup --url http://127.0.0.1:8000/")
    traffic = commands.index("manage.py generate_traffic --url http://127.0.0.1:8000/")
    server = commands.index("manage.py runserver 127.0.0.1:8000")
    assert setup < traffic < server


def test_demo_setup_migrates_seeds_and_creates_an_admin_once(
    env: dict[str, str], tmp_path: Path
) -> None:
    first = manage(env, "demo_setup")
    match = PASSWORD.search(first.stdout)
    assert match, first.stdout
    password = match.group(1)
    assert len(password) >= 16
    for where in ("http://127.0.0.1:8000/ ", "/metrics", "/admin/"):
        assert where in first.stdout
    again = manage(env, "demo_setup")
    assert PASSWORD.search(again.stdout) is None  # never printed twice
    assert "python manage.py changepassword admin" in again.stdout

    state = django_shell(
        env,
        f"""
import json
from django.contrib.auth import authenticate
from demo_project.shop.models import Category, Order, Product
user = authenticate(username="admin", password={password!r})
print(json.dumps({{
    "superuser": bool(user and user.is_superuser),
    "categories": Category.objects.count(),
    "products": Product.objects.count(),
    "orders": Order.objects.count(),
}}))
""",
    )
    assert state == {"superuser": True, "categories": 3, "products": 12, "orders": 30}

    # Another fresh database gets another password: none is shipped.
    other = manage(demo_env(tmp_path / "other.sqlite3"), "demo_setup")
    other_match = PASSWORD.search(other.stdout)
    assert other_match
    assert other_match.group(1) != password


@pytest.fixture
def no_django_on_path(tmp_path: Path) -> str:
    """A PATH whose ``python`` and ``python3`` have no Django: a new user's shell, the
    project's virtualenv not activated (the base interpreter, without site-packages)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    base = getattr(sys, "_base_executable", sys.executable)
    for name in ("python", "python3"):
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\nexec {shlex.quote(base)} -I -S "$@"\n')
        script.chmod(0o755)
    return f"{bin_dir}:/usr/bin:/bin"


def typed(command: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run ``command`` as a person types it in the project's directory (no terminal)."""
    return subprocess.run(
        ["bash", "-c", command],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        start_new_session=True,  # no controlling terminal: getpass reads stdin
    )


def test_printed_commands_work_as_typed(env: dict[str, str], no_django_on_path: str) -> None:
    """What demo_setup tells people to run works as written, without activating anything:
    `python manage.py ...` would fail with ModuleNotFoundError in such a shell."""
    shell = {**env, "PATH": no_django_on_path}
    assert "No module named 'django'" in typed("python manage.py check", shell).stderr
    url = f"http://127.0.0.1:{free_port()}/"  # nothing listens there
    first = manage(shell, "demo_setup", "--url", url)
    again = manage(shell, "demo_setup", "--url", url)
    traffic = re.search(r"More traffic: (.+)", first.stdout)
    change = re.search(r"forgot it\? (.+)\)", again.stdout)
    assert traffic, first.stdout
    assert change, again.stdout

    # Django runs it, and says that no server answers: the right failure, as typed.
    result = typed(traffic.group(1), shell)
    assert "No server answered" in result.stderr, result.stderr
    new = "copper-Whistle-92-train"
    result = typed(change.group(1), shell, stdin=f"{new}\n{new}\n")
    assert "Password changed successfully for user 'admin'" in result.stdout, result
    state = django_shell(
        env,
        "import json; from django.contrib.auth import authenticate; "
        f"print(json.dumps(authenticate(username='admin', password={new!r}) is not None))",
    )
    assert state is True
    # The shop's index page shows a command that works as typed too.
    page = django_shell(
        shell,
        "import json; from django.test import Client; "
        f"host = '127.0.0.1:{free_port()}'; "
        "print(json.dumps(Client(HTTP_HOST=host).get('/').content.decode()))",
    )
    shown = re.search(r"More traffic: <code>(.+?)</code>", page)
    assert shown, page
    assert "No server answered" in typed(shown.group(1).replace("&#x27;", "'"), shell).stderr


def test_generate_traffic_in_process(ready: dict[str, str]) -> None:
    result = manage(ready, "generate_traffic", "--requests", "150", "--seed", "7")
    assert "150 requests to this process (test client)" in result.stdout
    counted = sum(int(n) for n in re.findall(r"(\d+) x \d{3}", result.stdout))
    assert counted == 150
    for path in ("/fast/", "/slow/", "/products/", "/async/", "/cached/", "/checkout/"):
        assert path in result.stdout
    assert "x 500" in result.stdout  # the failing view is part of the mix


@pytest.mark.parametrize(
    "url",
    ["http://example.invalid:8000/", "http://192.0.2.1:8000/", "https://127.0.0.1:8000/"],
)
def test_generate_traffic_sends_only_to_loopback(env: dict[str, str], url: str) -> None:
    result = manage(env, "generate_traffic", "--url", url, check=False)
    assert result.returncode != 0
    assert "CommandError" in result.stderr
    assert "requests to" not in result.stdout


def test_generate_traffic_waits_for_a_server_within_a_deadline(env: dict[str, str]) -> None:
    url = f"http://127.0.0.1:{free_port()}/"  # nothing listens there
    result = manage(env, "generate_traffic", "--url", url, "--wait", "0.5", check=False)
    assert result.returncode != 0
    assert "No server answered" in result.stderr


VIEWS_PROBE = """
import json
from django.test import Client
from django_pytheus.metrics import get_metrics
from pytheus.registry import REGISTRY
from demo_project.shop.models import Product

c = Client(raise_request_exception=False, HTTP_HOST="127.0.0.1")
statuses = {path: c.get(path).status_code for path in (
    "/", "/fast/", "/slow/?max=0.05", "/products/", "/products/?fixed=1", "/products/1/",
    "/boom/", "/async/", "/cached/", "/cached/", "/admin/login/", "/metrics", "/nope/",
)}
order = c.post("/checkout/", {"product": "1", "quantity": "2", "payment": "card"})
statuses["checkout"] = order.status_code
statuses["checkout-too-many"] = c.post(
    "/checkout/", {"product": "1", "quantity": "999", "payment": "card"}
).status_code
Product.objects.filter(pk=2).update(stock=0)
statuses["checkout-out-of-stock"] = c.post(
    "/checkout/", {"product": "2", "quantity": "1", "payment": "card"}
).status_code

def v(name, **labels):
    return REGISTRY.get_sample_value(name, labels)

print(json.dumps({
    "statuses": statuses,
    "n_plus_one": v("django_db_queries_per_request_sum", view="/products/"),
    "products": Product.objects.count(),
    "exceptions": v("django_http_exceptions_total", view="/boom/", type="DemoError"),
    "hits": v("django_cache_hits_total", cache="default"),
    "misses": v("django_cache_misses_total", cache="default"),
    "async": v("django_http_requests_total", method="GET", view="/async/", status="200"),
    "orders": v("shop_orders_total", category="Books", payment="card")
        or v("shop_orders_total", category="Coffee", payment="card")
        or v("shop_orders_total", category="Hardware", payment="card"),
    "failures": {r: v("shop_checkout_failures_total", reason=r)
                 for r in ("invalid", "out_of_stock")},
    "summary_count": v("shop_checkout_duration_seconds_count"),
    "median": v("shop_checkout_duration_seconds", quantile="0.5"),
    "unmatched": v("django_http_requests_total", method="GET", view="<unmatched>", status="404"),
}))
"""


def test_views_record_what_they_are_there_to_show(ready: dict[str, str]) -> None:
    seen = django_shell(ready, VIEWS_PROBE)
    statuses = seen.pop("statuses")
    assert statuses == {
        "/": 200,
        "/fast/": 200,
        "/slow/?max=0.05": 200,
        "/products/": 200,
        "/products/?fixed=1": 200,
        "/products/1/": 200,
        "/boom/": 500,
        "/async/": 200,
        "/cached/": 200,
        "/admin/login/": 200,
        "/metrics": 200,
        "/nope/": 404,
        "checkout": 302,
        "checkout-too-many": 400,
        "checkout-out-of-stock": 409,
    }
    products = seen.pop("products")
    # N+1: one query for the list, one per product; ?fixed=1 adds one query.
    assert seen.pop("n_plus_one") == (1 + products) + 1
    assert seen.pop("median") is not None  # quantiles with the in-memory backend
    assert seen == {
        "exceptions": 1.0,
        "hits": 1.0,
        "misses": 1.0,
        "async": 1.0,
        "orders": 1.0,
        "failures": {"invalid": 1.0, "out_of_stock": 1.0},
        "summary_count": 3.0,
        "unmatched": 1.0,
    }


def test_generate_traffic_stops_at_its_deadline(ready: dict[str, str]) -> None:
    result = manage(ready, "generate_traffic", "--requests", "5", "--timeout", "0")
    assert "0 requests to this process" in result.stdout
    assert "not sent (--timeout)" in result.stdout


REDIS_DOWN_PROBE = """
import json
from django.test import Client
from django_pytheus.metrics import get_metrics

c = Client(raise_request_exception=False, HTTP_HOST="127.0.0.1")
cached = [c.get("/cached/") for _ in range(2)]
statuses = {path: c.get(path).status_code for path in ("/", "/fast/", "/products/", "/async/")}
statuses["/metrics"] = c.get("/metrics").status_code
print(json.dumps({
    "cached": [r.status_code for r in cached],
    "served": [r.json()["cache"] for r in cached],
    "best_sellers": len(cached[0].json()["best_sellers"]),
    "statuses": statuses,
    "misses": get_metrics().cache_series("default").misses.snapshot()[0],
    "hits": get_metrics().cache_series("default").hits.snapshot()[0],
}))
"""


def test_the_demo_serves_its_pages_with_redis_down(tmp_path: Path) -> None:
    """PYTHEUS_REDIS_URL points at a Redis that is not there: the metrics wait (/metrics
    answers 503), the cache is served around (a miss, logged in one line), and every page,
    /cached/ included, renders."""
    env = demo_env(
        tmp_path / "demo.sqlite3", PYTHEUS_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"
    )
    manage(env, "demo_setup")
    result = manage(env, "shell", "--no-imports", "-c", REDIS_DOWN_PROBE)
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["cached"] == [200, 200]
    assert seen["served"] == ["miss", "miss"]  # computed each time: nothing could be kept
    assert seen["best_sellers"] > 0
    assert seen["statuses"] == {
        "/": 200,
        "/fast/": 200,
        "/products/": 200,
        "/async/": 200,
        "/metrics": 503,
    }
    # Counted as misses (django-redis answers the default), not as errors.
    assert (seen["hits"], seen["misses"]) == (0.0, 2.0)
    warnings = [line for line in result.stderr.splitlines() if line.startswith("cache unreachable")]
    assert len(warnings) == 4, result.stderr  # a get and a set per request, one line each
    assert all("ConnectionError" in line for line in warnings)
    assert "Traceback" not in result.stderr
