"""The /metrics view: formats, gzip, name[], HEAD, 503 when Redis is down, access control."""

from __future__ import annotations

import base64
import gzip

import pytest
from django.contrib.auth.models import User
from django.http import HttpRequest
from django.test import Client, RequestFactory
from django.test.utils import override_settings
from django.urls import reverse

from django_pytheus.access import check_access, client_ip
from django_pytheus.conf import parse_settings
from pytheus.exposition import OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE
from tests.core.helpers import parse_text
from tests.django_app.conftest import scrape_openmetrics, value
from tests.servers import promtool_check_metrics

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def test_reverse_and_text_format() -> None:
    assert reverse("django_pytheus:metrics") == "/metrics"
    Client().get("/hello/")
    response = Client().get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"] == PROMETHEUS_CONTENT_TYPE
    assert response["Cache-Control"] == "no-store"
    text = response.content.decode()
    promtool_check_metrics(text)
    assert int(response["Content-Length"]) == len(response.content)
    assert (
        value(
            parse_text(text),
            "django_http_requests_total",
            method="GET",
            view="/hello/",
            status="200",
        )
        == 1
    )


def test_openmetrics_when_asked() -> None:
    Client().get("/hello/")
    response = Client().get("/metrics", headers={"Accept": OPENMETRICS})
    assert response["Content-Type"] == OPENMETRICS_CONTENT_TYPE
    p = scrape_openmetrics()
    assert value(p, "django_http_requests_total", method="GET", view="/hello/", status="200") == 1
    assert p.units["django_http_request_duration_seconds"] == "seconds"


def test_gzip_when_accepted() -> None:
    response = Client().get("/metrics", headers={"Accept-Encoding": "gzip"})
    assert response["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in response["Vary"]
    assert gzip.decompress(response.content).startswith(b"# HELP")


def test_name_filter() -> None:
    Client().get("/hello/")
    response = Client().get(
        "/metrics?name[]=django_http_requests_total&name[]=django_cache_hits_total"
    )
    families = {
        line.split()[2]
        for line in response.content.decode().splitlines()
        if line.startswith("# TYPE")
    }
    assert families == {"django_http_requests_total", "django_cache_hits_total"}


def test_head_has_the_headers_without_the_body() -> None:
    get = Client().get("/metrics")
    head = Client().head("/metrics")
    assert head.status_code == 200
    assert head.content == b""
    assert head["Content-Type"] == get["Content-Type"]
    assert int(head["Content-Length"]) > 0


def test_other_methods_are_not_allowed() -> None:
    response = Client().post("/metrics")
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"


def test_exempt_from_login_required_middleware() -> None:
    from tests import settings

    with override_settings(
        MIDDLEWARE=[*settings.MIDDLEWARE, "django.contrib.auth.middleware.LoginRequiredMiddleware"],
        LOGIN_URL="/login/",
    ):
        client = Client()
        assert client.get("/hello/").status_code == 302  # other views need a login
        assert client.get("/metrics").status_code == 200


def test_503_when_the_redis_backend_is_unreachable(
    redis_server_factory, redis_backend_settings
) -> None:
    server = redis_server_factory()
    redis_backend_settings(
        BACKEND_CONFIG={"url": server.url, "socket_timeout": 1, "socket_connect_timeout": 1}
    )
    Client().get("/hello/")
    assert Client().get("/metrics").status_code == 200
    server.stop()  # a real outage: nothing listens on that port any more
    response = Client().get("/metrics")
    assert response.status_code == 503
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["Retry-After"] == "5"
    assert response.content.startswith(b"Metrics are unavailable: cannot read metrics from Redis")
    assert b"Traceback" not in response.content
    # The application itself keeps answering.
    assert Client().get("/hello/").status_code == 200


# ----------------------------------------------------------------------------- access


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_bearer_tokens(pytheus_settings) -> None:
    pytheus_settings(AUTH={"TOKENS": ["first-token", "second-token"]})
    client = Client()
    missing = client.get("/metrics")
    assert missing.status_code == 401
    assert missing["WWW-Authenticate"] == 'Bearer realm="metrics"'
    wrong = client.get("/metrics", headers={"Authorization": "Bearer first-tokeN"})
    assert wrong.status_code == 401
    assert wrong["WWW-Authenticate"] == 'Bearer realm="metrics", error="invalid_token"'
    assert (
        client.get("/metrics", headers={"Authorization": "Bearer first-token"}).status_code == 200
    )
    assert (
        client.get("/metrics", headers={"Authorization": "bearer  second-token "}).status_code
        == 200
    )
    assert (
        client.get("/metrics", headers={"Authorization": basic("first-token", "x")}).status_code
        == 401
    )


def test_basic_auth(pytheus_settings) -> None:
    pytheus_settings(AUTH={"BASIC": {"prometheus": "pässword", "other": "x"}})
    client = Client()
    missing = client.get("/metrics")
    assert missing.status_code == 401
    assert missing["WWW-Authenticate"] == 'Basic realm="metrics", charset="UTF-8"'
    assert (
        client.get(
            "/metrics", headers={"Authorization": basic("prometheus", "pässword")}
        ).status_code
        == 200
    )
    assert client.get("/metrics", headers={"Authorization": basic("other", "x")}).status_code == 200
    assert (
        client.get("/metrics", headers={"Authorization": basic("prometheus", "x")}).status_code
        == 401
    )
    assert (
        client.get("/metrics", headers={"Authorization": basic("other", "pässword")}).status_code
        == 401
    )
    assert client.get("/metrics", headers={"Authorization": "Basic not-base64!"}).status_code == 401
    no_colon = "Basic " + base64.b64encode(b"prometheus").decode()
    assert client.get("/metrics", headers={"Authorization": no_colon}).status_code == 401


def test_tokens_and_basic_together_offer_both_challenges(pytheus_settings) -> None:
    pytheus_settings(AUTH={"TOKENS": ["t"], "BASIC": {"u": "p"}})
    response = Client().get("/metrics")
    assert (
        response["WWW-Authenticate"]
        == 'Bearer realm="metrics", Basic realm="metrics", charset="UTF-8"'
    )
    assert Client().get("/metrics", headers={"Authorization": "Bearer t"}).status_code == 200
    assert Client().get("/metrics", headers={"Authorization": basic("u", "p")}).status_code == 200


def test_networks(pytheus_settings) -> None:
    pytheus_settings(AUTH={"NETWORKS": ["10.1.0.0/16", "::1"]})
    assert Client(REMOTE_ADDR="10.1.2.3").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="::1").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="::ffff:10.1.2.3").get("/metrics").status_code == 200
    denied = Client(REMOTE_ADDR="10.2.0.1").get("/metrics")
    assert denied.status_code == 403
    assert "WWW-Authenticate" not in denied
    # Without TRUSTED_PROXIES, X-Forwarded-For is ignored.
    forged = Client(REMOTE_ADDR="10.2.0.1").get("/metrics", headers={"X-Forwarded-For": "10.1.2.3"})
    assert forged.status_code == 403
    assert Client(REMOTE_ADDR="").get("/metrics").status_code == 403


def test_networks_behind_trusted_proxies(pytheus_settings) -> None:
    pytheus_settings(AUTH={"NETWORKS": ["10.1.0.0/16"], "TRUSTED_PROXIES": ["192.0.2.0/24"]})

    def status(remote: str, forwarded: str) -> int:
        client = Client(REMOTE_ADDR=remote)
        return client.get("/metrics", headers={"X-Forwarded-For": forwarded}).status_code

    assert status("192.0.2.1", "10.1.0.5") == 200
    assert status("192.0.2.1", "10.1.0.5, 192.0.2.7") == 200  # two proxies
    # The client put an allowed address in front; the proxy appended the real one.
    assert status("192.0.2.1", "10.1.0.5, 203.0.113.9") == 403
    assert status("192.0.2.1", "203.0.113.9") == 403
    assert status("192.0.2.1", "garbage") == 403
    # A request that did not come through a trusted proxy: its header is not believed.
    assert status("203.0.113.9", "10.1.0.5") == 403


def test_client_ip() -> None:
    rf = RequestFactory()
    trusted = parse_settings(
        {"AUTH": {"NETWORKS": ["0.0.0.0/0"], "TRUSTED_PROXIES": ["192.0.2.0/24"]}}
    ).auth.trusted_proxies

    def ip(remote: str, forwarded: str | None = None) -> str:
        headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
        return str(client_ip(rf.get("/", REMOTE_ADDR=remote, headers=headers), trusted))

    assert ip("203.0.113.1") == "203.0.113.1"
    assert ip("192.0.2.1") == "192.0.2.1"
    assert ip("192.0.2.1", "") == "192.0.2.1"
    assert ip("192.0.2.1", "198.51.100.1:4711, 192.0.2.2") == "198.51.100.1"
    assert ip("192.0.2.1", "[2001:db8::1]:80") == "2001:db8::1"
    assert ip("192.0.2.1", "192.0.2.9, 192.0.2.2") == "192.0.2.9"
    assert ip("192.0.2.1", "junk") == "None"


def test_networks_and_credentials_both_apply(pytheus_settings) -> None:
    pytheus_settings(AUTH={"NETWORKS": ["10.0.0.0/8"], "TOKENS": ["t"]})
    bearer = {"Authorization": "Bearer t"}
    assert Client(REMOTE_ADDR="10.0.0.1").get("/metrics", headers=bearer).status_code == 200
    assert Client(REMOTE_ADDR="10.0.0.1").get("/metrics").status_code == 401
    assert Client(REMOTE_ADDR="11.0.0.1").get("/metrics", headers=bearer).status_code == 403


@pytest.mark.django_db
def test_staff_session(pytheus_settings) -> None:
    pytheus_settings(AUTH={"STAFF": True})
    client = Client()
    assert client.get("/metrics").status_code == 403
    User.objects.create_user("user", password="pw")
    client.login(username="user", password="pw")
    assert client.get("/metrics").status_code == 403
    User.objects.create_user("staff", password="pw", is_staff=True)
    client.login(username="staff", password="pw")
    assert client.get("/metrics").status_code == 200
    User.objects.filter(username="staff").update(is_active=False)
    assert client.get("/metrics").status_code == 403


def allow_header(request: HttpRequest) -> bool:
    return request.headers.get("X-Scraper") == "yes"


def test_callable(pytheus_settings) -> None:
    pytheus_settings(AUTH={"CALLABLE": "tests.django_app.test_views.allow_header"})
    assert Client().get("/metrics").status_code == 403
    assert Client().get("/metrics", headers={"X-Scraper": "yes"}).status_code == 200
    pytheus_settings(AUTH={"CALLABLE": lambda request: True})
    assert Client().get("/metrics").status_code == 200


def test_callable_or_token(pytheus_settings) -> None:
    pytheus_settings(AUTH={"CALLABLE": allow_header, "TOKENS": ["t"]})
    assert Client().get("/metrics", headers={"X-Scraper": "yes"}).status_code == 200
    assert Client().get("/metrics", headers={"Authorization": "Bearer t"}).status_code == 200
    assert Client().get("/metrics").status_code == 401


def test_check_access_is_reusable() -> None:
    rf = RequestFactory()
    auth = parse_settings({"AUTH": {"TOKENS": ["t"]}}).auth
    assert check_access(rf.get("/anything/"), auth).status_code == 401
    assert check_access(rf.get("/anything/", headers={"Authorization": "Bearer t"}), auth) is None
    assert check_access(rf.get("/anything/")) is None  # the test settings: no AUTH
