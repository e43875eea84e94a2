"""Hostile HTTP on ``/metrics`` and on the admin dashboard's JSON view, through Django's test
client: any ``Accept`` and ``Accept-Encoding`` (drawn, huge, malformed), a thousand
``name[]`` parameters, wrong and malformed credentials in a loop, how long a wrong credential
takes to refuse (it must not tell how close it was), and HTML in help texts, label values and
query parameters of the admin page.

What a real server adds (header and request-line limits, bytes that are not Latin-1) is in
``test_demo_gunicorn.py``, against the demo under gunicorn.
"""

from __future__ import annotations

import base64
import gzip
import random
import statistics
import time
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any

import pytest
from django.test import Client, RequestFactory
from django.urls import reverse
from hypothesis import example, given, settings
from hypothesis import strategies as st

from django_pytheus.access import check_access
from django_pytheus.conf import get_settings
from pytheus.exposition import OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE
from pytheus.metrics import Counter, Histogram
from tests.core.helpers import Parsed, parse_openmetrics, parse_text
from tests.django_app.conftest import (  # noqa: F401  (fixtures)
    fresh_metrics,
    make_user,
    pytheus_settings,
)
from tests.hardening.conftest import report

TOKEN = "pytheus-scrape-token-0123456789abcdef"  # 37 characters
USER, PASSWORD = "prometheus", "a-long-basic-auth-password-42"


@pytest.fixture(autouse=True)
def urls(settings: Any) -> None:
    settings.ROOT_URLCONF = "tests.hardening.urls"


@pytest.fixture
def some_metrics() -> None:
    c = Counter("jobs", "Jobs done.", ["queue"])
    c.labels(queue="emails").inc(3)
    Histogram("job_seconds", "Job durations.", buckets=[0.1, 1]).observe(0.5)


def parse_response(response: Any) -> Parsed:
    """Check the status and content type of a scrape, undo gzip, parse it."""
    assert response.status_code == 200, response.content[:500]
    body = response.content
    if response.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    assert int(response["Content-Length"]) == len(response.content)
    if response["Content-Type"] == OPENMETRICS_CONTENT_TYPE:
        return parse_openmetrics(body.decode())
    assert response["Content-Type"] == PROMETHEUS_CONTENT_TYPE
    return parse_text(body.decode())


# --------------------------------------------------------------------------- headers

HEADER_PARTS = st.sampled_from(
    ["application/openmetrics-text", "text/plain", "*/*", "text/*", "gzip", "x-gzip",
     "identity", "br", ";", ",", "=", " ", '"', "q=", "q=0", "q=1", "q=0.5", "q=nan", "q=-1",
     "q=1e999", "q=", "version=1.0.0", "version=0.0.4", "version=2", "charset=utf-8",
     "\t", "\x00", "\x7f", "é", "\U0001f680", "\ud800"]
)  # fmt: skip
HEADERS = st.lists(HEADER_PARTS, max_size=30).map("".join) | st.text(max_size=60)


@pytest.mark.slow
@pytest.mark.usefixtures("some_metrics")
def test_any_accept_and_accept_encoding_get_a_valid_scrape() -> None:
    client = Client()
    seen: set[tuple[str, str | None]] = set()

    @settings(settings.get_profile("hardening"), max_examples=150)
    @given(accept=HEADERS, encoding=HEADERS)
    @example(accept="application/openmetrics-text; version=1.0.0", encoding="gzip")
    @example(accept="text/plain", encoding="gzip")
    def check(accept: str, encoding: str) -> None:
        response = client.get("/metrics", headers={"Accept": accept, "Accept-Encoding": encoding})
        parsed = parse_response(response)
        assert parsed.value("jobs_total", {"queue": "emails"}) == 3
        seen.add((response["Content-Type"], response.get("Content-Encoding")))

    check()
    # Both formats, gzipped and not, came out of the drawn headers.
    assert len(seen) == 4, seen


@pytest.mark.usefixtures("some_metrics")
def test_huge_headers_cost_no_more_than_a_normal_scrape() -> None:
    """Header parsing reads the first 4,096 characters and 32 entries: a megabyte of
    Accept or Accept-Encoding costs what a normal scrape costs."""
    client = Client()
    huge_accept = "text/html;q=0.1, " * 60_000 + "application/openmetrics-text"
    huge_encoding = "deflate;q=0.5, " * 70_000 + "gzip"
    assert len(huge_accept) > 1_000_000

    def median_seconds(headers: dict[str, str]) -> float:
        times = []
        for _ in range(15):
            start = time.perf_counter()
            parse_response(client.get("/metrics", headers=headers))
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    normal = median_seconds({})
    huge = median_seconds({"Accept": huge_accept, "Accept-Encoding": huge_encoding})
    # Past the bound, the OpenMetrics and gzip entries are not seen: the text format.
    response = client.get("/metrics", headers={"Accept": huge_accept})
    assert response["Content-Type"] == PROMETHEUS_CONTENT_TYPE
    report(
        "huge_headers",
        {"normal_scrape_ms": round(normal * 1e3, 3), "megabyte_headers_ms": round(huge * 1e3, 3)},
    )
    # The test client itself copies the headers into the request: a few ms per MB.
    assert huge < 3 * normal + 0.05


@pytest.mark.usefixtures("some_metrics")
def test_a_thousand_name_parameters() -> None:
    client = Client()
    wanted = "&".join(["name[]=jobs_total"] + [f"name[]=nothing_{i}" for i in range(999)])
    start = time.perf_counter()
    parsed = parse_response(client.get(f"/metrics?{wanted}"))
    elapsed = time.perf_counter() - start
    assert parsed.names() == {"jobs_total"}
    # Long and odd names cost no more.
    odd = "&".join(f"name[]={'%F0%9F%9A%80' * 50}{i}%00" for i in range(1000))
    assert parse_response(client.get(f"/metrics?{odd}")).names() == set()
    # Django refuses more than DATA_UPLOAD_MAX_NUMBER_FIELDS (1,000) parameters: a 400,
    # not a 500, and nothing filtered by a truncated list.
    too_many = wanted + "&name[]=one_more"
    assert client.get(f"/metrics?{too_many}").status_code == 400
    report("thousand_names", {"scrape_with_1000_names_ms": round(elapsed * 1e3, 3)})
    assert elapsed < 1.0


# --------------------------------------------------------------------------- credentials


def basic(user: str, password: str | bytes) -> str:
    raw = password if isinstance(password, bytes) else password.encode()
    return "Basic " + base64.b64encode(user.encode() + b":" + raw).decode()


@pytest.fixture
def protected(pytheus_settings: Callable[..., None]) -> None:  # noqa: F811
    pytheus_settings(AUTH={"TOKENS": [TOKEN], "BASIC": {USER: PASSWORD}})


@pytest.mark.usefixtures("protected", "some_metrics")
def test_wrong_credentials_in_a_loop_and_malformed_ones() -> None:
    client = Client()
    rng = random.Random(7)
    wrong = 0
    for i in range(300):
        guess = "".join(rng.choice("abcdef0123456789") for _ in range(len(TOKEN)))
        for header in (f"Bearer {guess}", basic(USER, f"{PASSWORD[:-3]}{i:03d}")):
            response = client.get("/metrics", headers={"Authorization": header})
            assert response.status_code == 401
            assert "WWW-Authenticate" in response
            wrong += 1
    malformed = [
        "",
        "Bearer",
        "Bearer ",
        "Basic",
        "Basic !!!not base64!!!",
        "Basic " + base64.b64encode(b"no colon").decode(),
        basic(USER, b"\xff\xfe not utf-8"),
        "Basic " + base64.b64encode(b":" + PASSWORD.encode()).decode(),
        "Bearer " + "x" * 1_000_000,
        "Bearer \x00" + TOKEN,
        f"Bearer {TOKEN}\x00",
        f"bearer  {TOKEN[:-1]}",
        "Digest username=prometheus",
        f"Basic {TOKEN}",
        f"Bearer {basic(USER, PASSWORD)[6:]}",
        "\ud800",
    ]
    for header in malformed:
        response = client.get("/metrics", headers={"Authorization": header})
        assert response.status_code == 401, (header[:40], response.content)
    # Nothing is locked out or worn down: the right ones still get in, both schemes.
    for header in (f"Bearer {TOKEN}", f"bearer {TOKEN}", basic(USER, PASSWORD)):
        response = client.get("/metrics", headers={"Authorization": header})
        assert parse_response(response).value("jobs_total", {"queue": "emails"}) == 3
    assert wrong == 600


def test_wrong_credentials_take_the_same_time_whatever_they_get_right(
    protected: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bearer tokens and basic passwords are compared as SHA-256 digests with
    ``hmac.compare_digest``, every configured entry every time: how much of a guess is
    right, and its length, cannot change how long the refusal takes.

    Measured on ``check_access()`` itself (a whole request through the test client adds
    ~0.5 ms of noise around a comparison that takes well under a microsecond). Variants are
    interleaved in random order, so that machine load hits them alike, and compared by
    their medians. A byte-by-byte comparison that stopped at the first wrong character
    differs by nanoseconds per character, which no assertion on a shared machine could
    see; what this bounds (20%) is the kind of leak that matters in practice, an early
    exit before the work, which would show as a large difference.
    """
    auth = get_settings().auth
    factory = RequestFactory()
    variants = {
        "right length, first char wrong": f"Bearer X{TOKEN[1:]}",
        "right length, last char wrong": f"Bearer {TOKEN[:-1]}X",
        "shorter (8 chars)": f"Bearer {TOKEN[:8]}",
        "longer (64 chars)": f"Bearer {TOKEN}{'0' * 27}",
        "basic, password first char wrong": basic(USER, "X" + PASSWORD[1:]),
        "basic, password last char wrong": basic(USER, PASSWORD[:-1] + "X"),
        "basic, wrong user": basic("prometheuz", PASSWORD),
        "basic, password shorter": basic(USER, PASSWORD[:5]),
    }
    requests = {
        name: factory.get("/metrics", HTTP_AUTHORIZATION=header)
        for name, header in variants.items()
    }
    right = factory.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert check_access(right, auth) is None
    times: dict[str, list[int]] = {name: [] for name in variants}
    order = list(variants)
    rng = random.Random(0)
    for _ in range(4000):
        rng.shuffle(order)
        for name in order:
            request = requests[name]
            start = time.perf_counter_ns()
            response = check_access(request, auth)
            times[name].append(time.perf_counter_ns() - start)
            assert response is not None
            assert response.status_code == 401
    medians = {name: statistics.median(t) / 1000 for name, t in times.items()}
    # Bearer and basic do different work (basic decodes base64 first): compared apart.
    bearer = [v for k, v in medians.items() if not k.startswith("basic")]
    basic_ = [v for k, v in medians.items() if k.startswith("basic")]
    report(
        "credential_timing",
        {
            "median_us": {k: round(v, 3) for k, v in medians.items()},
            "bearer_spread_percent": round(100 * (max(bearer) / min(bearer) - 1), 2),
            "basic_spread_percent": round(100 * (max(basic_) / min(basic_) - 1), 2),
            "samples_per_variant": 4000,
        },
    )
    assert max(bearer) / min(bearer) < 1.2, medians
    assert max(basic_) / min(basic_) < 1.2, medians


# --------------------------------------------------------------------------- admin

# A tag and an attribute of our own: if either shows up as markup, a payload escaped.
PAYLOADS = [
    "<pytheusxss>",
    '"><pytheusxss>',
    "'><pytheusxss>",
    '" onpytheus="1',
    "' onpytheus='1",
    "</script><pytheusxss>",
    "</title><pytheusxss>",
    "</textarea><pytheusxss>",
    "<!--<pytheusxss>-->",
    "<svg onpytheus=1>",
    "javascript:pytheus()",
    "{{ request }}{% csrf_token %}",
    "&lt;pytheusxss&gt;",
]


class Markup(HTMLParser):
    """Collects the tags and attribute names of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: set[str] = set()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        for name, val in attrs:
            self.attributes.add(name)
            if name in ("href", "src", "action") and val:
                self.hrefs.append(val)


def assert_inert(html: str) -> None:
    markup = Markup()
    markup.feed(html)
    assert "pytheusxss" not in markup.tags
    assert "onpytheus" not in markup.attributes
    assert not [h for h in markup.hrefs if h.lower().startswith("javascript:")]
    assert "{% csrf_token %}" not in html or "{{ request }}" in html  # not rendered twice


@pytest.fixture
def staff(make_user: Callable[..., Any]) -> Client:  # noqa: F811
    client = Client()
    client.force_login(make_user(view_metric=True))
    return client


@pytest.mark.django_db
def test_html_in_help_label_values_and_queries_stays_text(staff: Client) -> None:
    for i, payload in enumerate(PAYLOADS):
        c = Counter(f"hostile_{i}", f"Help {payload} text.", ["value"])
        c.labels(value=payload).inc()
        Histogram(f"hostile_h_{i}", payload, ["v"], buckets=[1]).labels(v=payload).observe(2)
    changelist = reverse("admin:django_pytheus_metric_changelist")
    data_url = reverse("admin:django_pytheus_metric_data")
    pages = [changelist, f"{changelist}?q=pytheusxss", f"{changelist}?q=onpytheus"]
    pages += [reverse("admin:django_pytheus_metric_family", args=["hostile_3"])]
    for payload in PAYLOADS:  # reflected: in the search box, the type, the sort, the page
        for param in ("q", "type", "sort", "p"):
            pages.append(f"{changelist}?{param}={payload}")
    for url in pages:
        response = staff.get(url, {"unused": "<pytheusxss>"} if "?" not in url else None)
        assert response.status_code == 200, url
        assert_inert(response.content.decode())
    # The JSON view carries the text as data, labelled as JSON, never as HTML.
    response = staff.get(f"{data_url}?q=pytheusxss")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    families = response.json()["families"]
    assert any('value="<pytheusxss>"' in f["rows"] for f in families.values())


@pytest.mark.django_db
def test_hostile_parameters_of_the_json_view(staff: Client) -> None:
    for i in range(30):
        Counter(f"family_{i}", "A family.").inc(i)
    data_url = reverse("admin:django_pytheus_metric_data")
    names = "&".join(f"name=family_{i}" for i in range(1000))
    start = time.perf_counter()
    response = staff.get(f"{data_url}?{names}")
    elapsed = time.perf_counter() - start
    assert response.status_code == 200
    assert len(response.json()["families"]) == 20  # what one page shows, at most
    for query in (
        f"q={'x' * 1_000_000}",
        "p=-1",
        "p=abc",
        f"p={10**100}",
        "sort=__class__",
        "type=<pytheusxss>",
        "family=",
        "name=",
        "name=%00&name=%F0%9F%9A%80",
    ):
        response = staff.get(f"{data_url}?{query}")
        assert response.status_code == 200, (query[:40], response.content[:300])
        assert response["Content-Type"] == "application/json"
    # An unknown family is a 404 that does not echo the name back.
    response = staff.get(f"{data_url}?family=%3Cpytheusxss%3E")
    assert response.status_code == 404
    assert b"pytheusxss" not in response.content
    # Anonymous: the login page, never data. (Not with the 1,000 names: past 16 KB of
    # URL, Django's admin answers anonymous requests with a 500, DisallowedRedirect for
    # the login redirect's ?next=; gunicorn's 4 KB request line stops them first.)
    response = Client().get(f"{data_url}?{names[:4000]}")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    report("admin_json_1000_names", {"ms": round(elapsed * 1e3, 1)})
