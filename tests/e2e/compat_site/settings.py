"""Settings of the compatibility test site; ``COMPAT_SIDE`` picks the instrumentation.

``pytheus``: our app with ``PYTHEUS["COMPAT"] = "django_prometheus"``, the Redis backend,
``PytheusMiddleware`` first; nothing else changed. ``django_prometheus``: its app, its two
middleware, its database ENGINE and cache BACKEND, its model mixin (models.py), and
``/metrics`` on a port of its own (``COMPAT_EXPORT_PORT``) so that scrapes are not counted,
as ours are not. Both: SQLite in ``COMPAT_DB_PATH``, a django-redis cache on
``COMPAT_REDIS_URL`` under ``COMPAT_PREFIX``, no database work at start-up.
"""

from __future__ import annotations

import os
from typing import Any

SIDE = os.environ["COMPAT_SIDE"]
DJANGO_PROMETHEUS = SIDE == "django_prometheus"
if SIDE not in ("pytheus", "django_prometheus"):
    raise RuntimeError(f"COMPAT_SIDE must be pytheus or django_prometheus, not {SIDE!r}")
REDIS_URL = os.environ["COMPAT_REDIS_URL"]
PREFIX = os.environ["COMPAT_PREFIX"]

SECRET_KEY = "compat-test-site-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
ROOT_URLCONF = "tests.e2e.compat_site.urls"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django_prometheus" if DJANGO_PROMETHEUS else "django_pytheus",
    "tests.e2e.compat_site",
]
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]
DATABASES = {
    "default": {
        "ENGINE": "django_prometheus.db.backends.sqlite3"
        if DJANGO_PROMETHEUS
        else "django.db.backends.sqlite3",
        "NAME": os.environ["COMPAT_DB_PATH"],
        "OPTIONS": {"timeout": 20},
    }
}
CACHES = {
    "default": {
        "BACKEND": "django_prometheus.cache.backends.redis.RedisCache"
        if DJANGO_PROMETHEUS
        else "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": f"{PREFIX}:cache",
    }
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {"django.request": {"level": "CRITICAL"}},
}

if DJANGO_PROMETHEUS:
    MIDDLEWARE = [
        "django_prometheus.middleware.PrometheusBeforeMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django_prometheus.middleware.PrometheusAfterMiddleware",
    ]
    PROMETHEUS_METRICS_EXPORT_PORT = int(os.environ["COMPAT_EXPORT_PORT"])
    PROMETHEUS_METRICS_EXPORT_ADDRESS = "127.0.0.1"
else:
    MIDDLEWARE = [
        "django_pytheus.middleware.PytheusMiddleware",
        "django.middleware.common.CommonMiddleware",
    ]
    PYTHEUS: dict[str, Any] = {
        "COMPAT": "django_prometheus",
        "BACKEND": "pytheus.backends.redis.MultiProcessRedisBackend",
        "BACKEND_CONFIG": {"url": REDIS_URL, "prefix": f"{PREFIX}:metrics"},
        # The mixin's label in models.py, without the mixin.
        "MODEL_METRICS": {"compat_site.Note": "note"},
    }
    SILENCED_SYSTEM_CHECKS = ["django_pytheus.W004"]
