"""The PYTHEUS setting: defaults, validation with messages that name the key, caching."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from django.test.utils import override_settings

from django_pytheus import conf
from django_pytheus.conf import get_settings, parse_settings
from pytheus.backends import MemoryBackend, get_backend
from tests.django_app.conftest import scrape, value


def test_defaults() -> None:
    s = parse_settings(None)
    assert s.backend is None
    assert s.backend_config is None
    assert s.namespace == "django"
    assert s.view_label == "route"
    assert s.exclude_views == {"django_pytheus:metrics"}
    assert s.latency_buckets[0] == 0.005
    assert list(s.size_buckets) == sorted(s.size_buckets)
    assert s.db_metrics is True
    assert s.cache_metrics is True
    assert s.auth.enabled is False
    assert parse_settings({}) == s


def test_values_are_read() -> None:
    s = parse_settings(
        {
            "BACKEND": MemoryBackend,
            "NAMESPACE": "shop",
            "VIEW_LABEL": "view_name",
            "EXCLUDE_VIEWS": ("a", "b"),
            "LATENCY_BUCKETS": [1, 2.5],
            "DB_METRICS": False,
            "AUTH": {"TOKENS": ["t"], "NETWORKS": ["10.0.0.0/8"], "STAFF": True},
        }
    )
    assert s.backend is MemoryBackend
    assert s.metric_name("x") == "shop_x"
    assert s.view_label == "view_name"
    assert s.exclude_views == {"a", "b"}
    assert s.latency_buckets == (1.0, 2.5)
    assert s.db_metrics is False
    assert s.auth.networks == (ipaddress.ip_network("10.0.0.0/8"),)
    assert s.auth.staff is True
    assert len(s.auth.token_digests) == 1
    assert b"t" not in s.auth.token_digests  # only digests are kept
    assert parse_settings({"NAMESPACE": ""}).metric_name("x") == "x"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "PYTHEUS must be a dict, got list."),
        (
            {"LATENCY_BUCKET": [1]},
            "PYTHEUS['LATENCY_BUCKET'] is not a setting of django_pytheus. Did you mean "
            "'LATENCY_BUCKETS'?",
        ),
        ({"namespace": "x"}, "Did you mean 'NAMESPACE'?"),
        ({"BACKEND": 3}, "PYTHEUS['BACKEND'] must be a dotted path or a backend class, got 3."),
        ({"BACKEND": "MemoryBackend"}, "PYTHEUS['BACKEND'] must be a dotted path such as"),
        (
            {"BACKEND_CONFIG": "redis://"},
            "PYTHEUS['BACKEND_CONFIG'] must be a dict, got 'redis://'.",
        ),
        (
            {"BACKEND_CONFIG": {"CACHE": 1}},
            "PYTHEUS['BACKEND_CONFIG']['CACHE'] must be the alias of a cache",
        ),
        ({"BACKEND_CONFIG": {"CACHE": "redis", "url": "redis://x"}}, "has both 'CACHE' and 'url'"),
        ({"NAMESPACE": "my-app"}, "PYTHEUS['NAMESPACE'] must be a metric name prefix"),
        ({"NAMESPACE": None}, "PYTHEUS['NAMESPACE'] must be"),
        (
            {"VIEW_LABEL": "path"},
            "PYTHEUS['VIEW_LABEL'] must be 'route' or 'view_name', got 'path'.",
        ),
        ({"EXCLUDE_VIEWS": "metrics"}, "PYTHEUS['EXCLUDE_VIEWS'] must be a list of strings"),
        ({"EXCLUDE_VIEWS": [1]}, "PYTHEUS['EXCLUDE_VIEWS'] must be a list of non-empty strings"),
        (
            {"LATENCY_BUCKETS": [0.5, 0.1]},
            "PYTHEUS['LATENCY_BUCKETS'] must be in increasing order without repeats: "
            "0.5 comes before 0.1",
        ),
        ({"SIZE_BUCKETS": [1, 1]}, "PYTHEUS['SIZE_BUCKETS'] must be in increasing order"),
        ({"DB_LATENCY_BUCKETS": []}, "PYTHEUS['DB_LATENCY_BUCKETS'] must be a non-empty list"),
        (
            {"CACHE_LATENCY_BUCKETS": ["1"]},
            "PYTHEUS['CACHE_LATENCY_BUCKETS'] must contain only numbers; '1' is not one.",
        ),
        (
            {"QUERY_COUNT_BUCKETS": [1, float("nan")]},
            "PYTHEUS['QUERY_COUNT_BUCKETS'] must contain only numbers",
        ),
        ({"QUERY_COUNT_BUCKETS": 5}, "PYTHEUS['QUERY_COUNT_BUCKETS'] must be a list of numbers"),
        ({"DB_METRICS": "yes"}, "PYTHEUS['DB_METRICS'] must be True or False, got 'yes'."),
        ({"CACHE_METRICS": 1}, "PYTHEUS['CACHE_METRICS'] must be True or False, got 1."),
        ({"AUTH": ["token"]}, "PYTHEUS['AUTH'] must be a dict"),
        (
            {"AUTH": {"TOKEN": ["t"]}},
            "PYTHEUS['AUTH']['TOKEN'] is not a setting of django_pytheus. Did you mean 'TOKENS'?",
        ),
        (
            {"AUTH": {"TOKENS": "t"}},
            "PYTHEUS['AUTH']['TOKENS'] must be a list of strings, got 't'.",
        ),
        ({"AUTH": {"TOKENS": ["a b"]}}, "contains a token with spaces"),
        (
            {"AUTH": {"BASIC": [("u", "p")]}},
            "PYTHEUS['AUTH']['BASIC'] must be a dict of {username: password}",
        ),
        ({"AUTH": {"BASIC": {"a:b": "p"}}}, "usernames must be non-empty strings without ':'"),
        (
            {"AUTH": {"BASIC": {"u": ""}}},
            "PYTHEUS['AUTH']['BASIC']['u'] must be a non-empty password",
        ),
        (
            {"AUTH": {"NETWORKS": ["10.0.0.300/8"]}},
            "PYTHEUS['AUTH']['NETWORKS'] contains '10.0.0.300/8', which is not an IP network",
        ),
        (
            {"AUTH": {"TRUSTED_PROXIES": ["10.0.0.1"]}},
            "TRUSTED_PROXIES'] only says whose X-Forwarded-For header",
        ),
        ({"AUTH": {"STAFF": "yes"}}, "PYTHEUS['AUTH']['STAFF'] must be True or False"),
        (
            {"AUTH": {"CALLABLE": 5}},
            "PYTHEUS['AUTH']['CALLABLE'] must be a function or the dotted path of one",
        ),
    ],
)
def test_mistakes_name_the_key(raw: Any, message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=re.escape(message)):
        parse_settings(raw)


def test_cache_alias_must_exist() -> None:
    with pytest.raises(
        ImproperlyConfigured,
        match=r"\['CACHE'\] is 'nope', which is not in CACHES \(aliases: 'default'\)",
    ):
        parse_settings({"BACKEND_CONFIG": {"CACHE": "nope"}}, {"default": {}})


def test_read_once_and_cleared_when_changed() -> None:
    first = get_settings()
    assert get_settings() is first
    with override_settings(PYTHEUS={"NAMESPACE": "other"}):
        assert get_settings().namespace == "other"
    assert get_settings().namespace == "django"
    with override_settings(
        CACHES={"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
    ):
        assert get_settings() is not first
    with override_settings(PYTHEUS={"DB_METRICS": "no"}), pytest.raises(ImproperlyConfigured):
        get_settings()
    assert conf.get_settings().db_metrics is True


def test_namespace_and_buckets_shape_the_metrics(pytheus_settings) -> None:
    pytheus_settings(NAMESPACE="shop", LATENCY_BUCKETS=[0.5, 60])
    Client().get("/hello/")
    p = scrape()
    labels = {"method": "GET", "view": "/hello/"}
    assert value(p, "shop_http_requests_total", status="200", **labels) == 1
    les = {
        dict(k[1])["le"] for k in p.samples if k[0] == "shop_http_request_duration_seconds_bucket"
    }
    assert les == {"0.5", "60.0", "+Inf"}
    assert not [k for k in p.samples if k[0].startswith("django_")]


def test_backend_from_settings(pytheus_settings) -> None:
    pytheus_settings(BACKEND="pytheus.backends.memory.MemoryBackend")
    first = get_backend()
    assert isinstance(first, MemoryBackend)
    pytheus_settings(BACKEND=MemoryBackend)
    assert get_backend() is not first  # loaded again, from the class


def test_no_backend_setting_keeps_the_current_backend(pytheus_settings) -> None:
    before = get_backend()
    pytheus_settings(NAMESPACE="django")
    assert get_backend() is before


def test_bad_backend_config_is_improperly_configured(pytheus_settings) -> None:
    with pytest.raises(ImproperlyConfigured, match="MemoryBackend takes no configuration"):
        pytheus_settings(BACKEND=MemoryBackend, BACKEND_CONFIG={"url": "redis://127.0.0.1"})


def test_counter_names_as_given_keeps_pytheus_0_6_1_names(pytheus_settings) -> None:
    from pytheus.exposition import generate_metrics, set_counter_names
    from pytheus.metrics import Counter

    with pytest.raises(ImproperlyConfigured, match=re.escape("PYTHEUS['COUNTER_NAMES']")):
        parse_settings({"COUNTER_NAMES": "bare"})
    try:
        pytheus_settings(COUNTER_NAMES="as_given")
        Counter("page_hits", "Hits.").inc()
        Client().get("/hello/")
        text = generate_metrics()
        assert "\npage_hits 1.0\n" in text
        # The app's own counters keep _total: the setting is for the application's.
        assert 'django_http_requests_total{method="GET",view="/hello/",status="200"} 1.0' in text
    finally:
        set_counter_names("total")
