"""Cache metrics: hits and misses (falsy values included), latency, errors; locmem,
the database cache and django-redis against a real redis-server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from asgiref.sync import async_to_sync
from django.core.cache import cache, caches
from django.core.cache.backends.locmem import LocMemCache
from django.core.management import call_command
from django.test import Client
from django.test.utils import override_settings

from django_pytheus import cache as cache_instrumentation
from tests.django_app.conftest import scrape, value
from tests.servers import RedisServer, free_port

FALSY = [0, "", None, False, [], 0.0]


@pytest.fixture(autouse=True)
def empty_caches() -> Iterator[None]:
    for c in caches.all():
        c.clear()
    yield
    for c in caches.all():
        c.clear()


def durations(alias: str, operation: str) -> float:
    return value(
        scrape(), "django_cache_operation_duration_seconds_count", cache=alias, operation=operation
    )


def test_falsy_values_are_hits_and_come_back_unchanged() -> None:
    for i, v in enumerate(FALSY):
        cache.set(f"k{i}", v)
    # Cleared after the sets above, so that only the gets count.
    for i, v in enumerate(FALSY):
        got = cache.get(f"k{i}", "the default")
        assert got == v
        assert type(got) is type(v)
    p = scrape()
    assert value(p, "django_cache_hits_total", cache="default") == len(FALSY)
    assert value(p, "django_cache_misses_total", cache="default") == 0


def test_misses_return_the_callers_default() -> None:
    assert cache.get("missing") is None
    assert cache.get("missing", "d") == "d"
    assert cache.get("missing", default=0) == 0
    p = scrape()
    assert value(p, "django_cache_misses_total", cache="default") == 3
    assert (
        value(p, "django_cache_operation_duration_seconds_count", cache="default", operation="get")
        == 3
    )


def test_get_many_counts_each_key_once() -> None:
    cache.set_many({"a": 0, "b": None})
    found = cache.get_many(k for k in ["a", "b", "c"])  # a generator is fine
    assert found == {"a": 0, "b": None}
    p = scrape()
    assert value(p, "django_cache_hits_total", cache="default") == 2
    assert value(p, "django_cache_misses_total", cache="default") == 1
    labels = {"cache": "default"}
    count = "django_cache_operation_duration_seconds_count"
    assert value(p, count, operation="get_many", **labels) == 1
    assert value(p, count, operation="set_many", **labels) == 1
    # LocMemCache builds get_many() from get() and set_many() from set(): not counted twice.
    operations = {dict(k[1])["operation"] for k in p.samples if k[0] == count}
    assert operations == {"get_many", "set_many", "clear"}


def test_get_or_set_and_other_operations() -> None:
    assert cache.get_or_set("g", 0) == 0  # get (miss), add, get again (hit)
    assert cache.get_or_set("g", 1) == 0  # get (hit)
    assert cache.add("n", 1) is True
    assert cache.incr("n") == 2
    assert cache.decr("n") == 1
    assert cache.has_key("n")
    assert cache.touch("n")
    assert cache.delete("n")
    cache.delete_many(["g"])
    p = scrape()
    assert value(p, "django_cache_hits_total", cache="default") == 2
    assert value(p, "django_cache_misses_total", cache="default") == 1
    count = "django_cache_operation_duration_seconds_count"
    for op, n in {
        "get": 3,
        "add": 2,
        "incr": 1,
        "decr": 1,
        "touch": 1,
        "delete": 1,
        "delete_many": 1,
    }.items():
        assert value(p, count, cache="default", operation=op) == n, op


def test_async_methods_are_counted_once() -> None:
    async def run() -> tuple[object, object]:
        await cache.aset("x", "")
        return await cache.aget("x", "d"), await cache.aget("y", "d")

    assert async_to_sync(run)() == ("", "d")
    p = scrape()
    assert value(p, "django_cache_hits_total", cache="default") == 1
    assert value(p, "django_cache_misses_total", cache="default") == 1


def test_native_async_methods_are_instrumented() -> None:
    native = {"BACKEND": "tests.django_app.testapp.cache_backends.NativeAsyncCache"}
    with override_settings(CACHES={"default": native}):

        async def run() -> tuple[object, object]:
            await cache.aset("x", None)
            return await cache.aget("x", "d"), await cache.aget("y", "d")

        assert async_to_sync(run)() == (None, "d")
    p = scrape()
    assert value(p, "django_cache_hits_total", cache="default") == 1
    assert value(p, "django_cache_misses_total", cache="default") == 1
    count = "django_cache_operation_duration_seconds_count"
    assert value(p, count, cache="default", operation="set") == 1
    assert value(p, count, cache="default", operation="get") == 2


def test_each_alias_is_a_label_and_the_object_is_unchanged() -> None:
    other = caches["other"]
    assert type(other) is LocMemCache
    assert cache_instrumentation.is_instrumented(other)
    other.set("k", 1)
    other.get("k")
    p = scrape()
    assert value(p, "django_cache_hits_total", cache="other") == 1
    assert value(p, "django_cache_hits_total", cache="default") == 0


def test_view_using_the_cache() -> None:
    assert Client().get("/cache/").json() == {"found": 0, "missing": "default"}
    p = scrape()
    assert value(p, "django_cache_hits_total", cache="default") == 1
    assert value(p, "django_cache_misses_total", cache="default") == 1


@pytest.mark.django_db
def test_database_cache_built_on_get_many() -> None:
    db_cache = {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "cache_table"}
    with override_settings(CACHES={"default": db_cache}):
        call_command("createcachetable", verbosity=0)
        cache.set("z", 0)
        assert cache.get("z", "d") == 0
        assert cache.get("nothing", "d") == "d"
        p = scrape()
    assert value(p, "django_cache_hits_total", cache="default") == 1
    assert value(p, "django_cache_misses_total", cache="default") == 1
    # The database cache's get() calls get_many(): one operation, not two.
    assert (
        value(p, "django_cache_operation_duration_seconds_count", cache="default", operation="get")
        == 2
    )
    assert not [k for k in p.samples if ("operation", "get_many") in k[1]]


def test_cache_metrics_can_be_turned_off(pytheus_settings) -> None:
    pytheus_settings(CACHE_METRICS=False)
    assert not cache_instrumentation.is_instrumented(caches["default"])
    cache.set("k", 1)
    cache.get("k")
    p = scrape()
    assert not [k for k in p.samples if k[0].startswith("django_cache_")]


# ----------------------------------------------------------------------------- django-redis


def redis_cache(url: str, **options: object) -> dict[str, object]:
    return {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": url,
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1, **options},
        "KEY_PREFIX": "cache-tests",
    }


def test_django_redis_falsy_values_and_defaults(redis_server: RedisServer) -> None:
    from django_redis import get_redis_connection
    from django_redis.cache import RedisCache

    with override_settings(CACHES={"default": redis_cache(redis_server.url)}):
        assert isinstance(caches["default"], RedisCache)
        get_redis_connection("default").ping()  # django-redis's own API still works
        try:
            for i, v in enumerate(FALSY):
                cache.set(f"k{i}", v, timeout=60)
            for i, v in enumerate(FALSY):
                assert cache.get(f"k{i}", "the default") == v
            assert cache.get("missing", "the default") == "the default"
            assert cache.get("missing") is None
            assert cache.get_many(["k0", "k1", "missing"]) == {"k0": 0, "k1": ""}
            assert cache.get_or_set("gs", 0) == 0
        finally:
            cache.clear()
    p = scrape()
    # get_or_set() misses, adds, then gets again (a hit): BaseCache's own behaviour.
    assert value(p, "django_cache_hits_total", cache="default") == len(FALSY) + 2 + 1
    assert value(p, "django_cache_misses_total", cache="default") == 2 + 1 + 1
    count = "django_cache_operation_duration_seconds_count"
    assert value(p, count, cache="default", operation="set") == len(FALSY)
    assert value(p, count, cache="default", operation="get_many") == 1


def test_django_redis_errors_are_counted_and_raised() -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    with override_settings(CACHES={"default": redis_cache(closed)}):
        with pytest.raises(Exception, match=r"127\.0\.0\.1") as info:
            cache.get("k")
        error_type = type(info.value).__name__
        with pytest.raises(type(info.value)):
            cache.get_many(["k"])
        with pytest.raises(type(info.value)):
            cache.set("k", 1)
    p = scrape()
    for op in ("get", "get_many", "set"):
        labels = {"cache": "default", "operation": op, "type": error_type}
        assert value(p, "django_cache_operation_errors_total", **labels) == 1
    assert value(p, "django_cache_hits_total", cache="default") == 0
    assert value(p, "django_cache_misses_total", cache="default") == 0
