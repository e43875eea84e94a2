"""The app on the Redis backend (a real redis-server): the same exact values as in
memory, read back from Redis."""

from __future__ import annotations

import pytest
import redis
from django.db import connection
from django.test import Client

from pytheus.backends import get_backend
from pytheus.backends.redis import MultiProcessRedisBackend
from tests.django_app.conftest import scrape, scrape_openmetrics, value
from tests.servers import RedisServer


@pytest.mark.django_db
def test_every_kind_of_metric_through_redis(
    redis_server: RedisServer, redis_backend_settings
) -> None:
    prefix = redis_backend_settings()
    assert isinstance(get_backend(), MultiProcessRedisBackend)
    client = Client(raise_request_exception=False)
    for year in (2001, 2002, 2003):
        client.get(f"/articles/{year}/")
    client.get("/boom/")
    client.get("/queries/4/")
    client.post("/echo/", data=b"e" * 100, content_type="application/octet-stream")
    with connection.cursor() as cursor:
        cursor.execute("SELECT 2")
    for p in (scrape(), scrape_openmetrics()):
        article = {"method": "GET", "view": "/articles/<int:year>/"}
        assert value(p, "django_http_requests_total", status="200", **article) == 3
        assert value(p, "django_http_request_duration_seconds_count", **article) == 3
        assert (
            value(p, "django_http_requests_total", method="GET", view="/boom/", status="500") == 1
        )
        assert (
            value(p, "django_http_exceptions_total", view="/boom/", type="ZeroDivisionError") == 1
        )
        assert value(p, "django_http_request_size_bytes_sum", method="POST", view="/echo/") == 100
        assert value(p, "django_http_response_size_bytes_sum", method="POST", view="/echo/") == 100
        assert value(p, "django_db_queries_per_request_sum", view="/queries/<int:n>/") == 4
        select = {"alias": "default", "vendor": "sqlite", "statement": "select"}
        assert value(p, "django_db_query_duration_seconds_count", **select) == 5
        assert value(p, "django_http_requests_in_progress", method="GET") == 0
    # The values really live in Redis, under this test's prefix.
    keys = redis.Redis.from_url(redis_server.url).keys(f"{prefix}*")
    assert keys
