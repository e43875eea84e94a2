"""A Django site with Celery: tests.settings plus the Redis backend, PYTHEUS["CELERY"], and
a broker, all from the environment that the tests give the web server and the workers."""

from __future__ import annotations

import os

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.celery_app"]
ROOT_URLCONF = "tests.celery_app.urls"

PYTHEUS = {
    "BACKEND": "pytheus.backends.redis.MultiProcessRedisBackend",
    "BACKEND_CONFIG": {
        "url": os.environ["TEST_REDIS_URL"],
        "prefix": os.environ["TEST_REDIS_PREFIX"],
        "flush_interval": float(os.environ.get("TEST_FLUSH_INTERVAL", "0.2")),
        "process_timeout": float(os.environ.get("TEST_PROCESS_TIMEOUT", "10")),
        "socket_timeout": float(os.environ.get("TEST_SOCKET_TIMEOUT", "5")),
    },
    "CELERY": True,
    "PROMETHEUS_CLIENT": os.environ.get("TEST_PROMETHEUS_CLIENT") == "1",
    "EXIT_TIMEOUT": float(os.environ.get("TEST_EXIT_TIMEOUT", "3")),
}

CELERY_BROKER_URL = os.environ.get("TEST_BROKER_URL", "redis://127.0.0.1:1/1")
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# The tests count every message: none may be prefetched by a worker that is then killed.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ACKS_LATE = False
CELERY_WORKER_MAX_TASKS_PER_CHILD = int(os.environ.get("TEST_MAX_TASKS_PER_CHILD", "0")) or None
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
