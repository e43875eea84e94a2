"""tests.settings on the Redis backend, for the gunicorn test (values from the environment)."""

from __future__ import annotations

import os

from tests.settings import *  # noqa: F403

PYTHEUS = {
    "BACKEND": "pytheus.backends.redis.MultiProcessRedisBackend",
    "BACKEND_CONFIG": {
        "url": os.environ["TEST_REDIS_URL"],
        "prefix": os.environ["TEST_REDIS_PREFIX"],
        "flush_interval": 0.2,
    },
}
