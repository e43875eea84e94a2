"""Settings of the demo project: SQLite and the in-memory backend unless told otherwise.

Everything that differs between ``make demo`` and ``docker compose up`` comes from the
environment:

=========================  ===================================================================
``PYTHEUS_REDIS_URL``      ``redis://host:6379/0``: the Redis backend (every worker process of
                           gunicorn reports the same numbers), a django-redis cache, and
                           Celery's broker (tasks run in a worker; without it, eagerly)
``PYTHEUS_REDIS_PREFIX``   key namespace in Redis for both (default ``demo``)
``DEMO_DEBUG``             ``1`` (default) or ``0``
``DEMO_SECRET_KEY``        required when ``DEMO_DEBUG=0``; the default is for development only
``DEMO_ALLOWED_HOSTS``     comma-separated (default ``127.0.0.1,localhost,[::1]``)
``DEMO_DB_PATH``           the SQLite file (default ``demo_project/demo.sqlite3``)
``DEMO_METRICS_NETWORKS``  who may read /metrics (default loopback: ``127.0.0.0/8,::1``)
``DEMO_METRICS_TOKEN``     also require ``Authorization: Bearer <token>`` on /metrics
``DEMO_SERVE_STATIC``      ``1``: serve the collected static files with DEBUG off (the container)
=========================  ===================================================================

``PYTHEUS_DEMO_NO_METRICS=1`` leaves ``PytheusMiddleware`` out: the same demo without request
metrics, the baseline against which tests/hardening measures the latency the middleware adds.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name}={value!r} must be 1 or 0.")


def _list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = _flag("DEMO_DEBUG", True)

# DEVELOPMENT ONLY, NOT A SECRET: anyone who reads this file knows it. It is accepted only
# with DEBUG on; a server with DEBUG off must be given DEMO_SECRET_KEY (the container's
# entry point generates one at start).
DEV_SECRET_KEY = "django-insecure-pytheus-demo-development-only-not-secret"
SECRET_KEY = os.environ.get("DEMO_SECRET_KEY") or DEV_SECRET_KEY
if not DEBUG and SECRET_KEY == DEV_SECRET_KEY:
    raise ImproperlyConfigured(
        "DEMO_DEBUG=0 needs a secret key of its own: set DEMO_SECRET_KEY, e.g. to the output "
        "of python -c 'import secrets; print(secrets.token_urlsafe(50))'."
    )

ALLOWED_HOSTS = _list("DEMO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # Before the apps that define metrics: its ready() loads the backend first.
    "django_pytheus",
    "demo_project.shop",
]

MIDDLEWARE = [
    # First, so that it sees every request, including those the others answer or fail.
    "django_pytheus.middleware.PytheusMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
if _flag("PYTHEUS_DEMO_NO_METRICS", False):
    MIDDLEWARE.remove("django_pytheus.middleware.PytheusMiddleware")

ROOT_URLCONF = "demo_project.urls"
WSGI_APPLICATION = "demo_project.wsgi.application"
ASGI_APPLICATION = "demo_project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DEMO_DB_PATH") or BASE_DIR / "demo_project" / "demo.sqlite3",
        # Several gunicorn workers write to one file: wait for the lock instead of failing.
        "OPTIONS": {"timeout": 20},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "demo_project" / "staticfiles"
SERVE_STATIC = _flag("DEMO_SERVE_STATIC", False)

# --------------------------------------------------------------------------- Redis or not

REDIS_URL = os.environ.get("PYTHEUS_REDIS_URL", "")
REDIS_PREFIX = os.environ.get("PYTHEUS_REDIS_PREFIX", "demo")

CACHES: dict[str, dict[str, Any]]
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": f"{REDIS_PREFIX}:cache",
            "OPTIONS": {
                # Short timeouts: a cache that does not answer must not hold a request long.
                "SOCKET_CONNECT_TIMEOUT": 2,
                "SOCKET_TIMEOUT": 2,
                # Redis down is a cache miss, not an error page: get() returns the default,
                # set() does nothing, and the views compute what they would have read. Each
                # error is logged (one line, see LOGGING below).
                "IGNORE_EXCEPTIONS": True,
            },
        }
    }
    DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
    DJANGO_REDIS_LOGGER = "demo_project.cache"
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --------------------------------------------------------------------------- django_pytheus

_auth: dict[str, Any] = {
    # Loopback by default: the developer's browser and a local Prometheus. The container
    # widens it to the private networks Docker uses (docker-compose.yaml).
    "NETWORKS": _list("DEMO_METRICS_NETWORKS", "127.0.0.0/8,::1"),
}
if os.environ.get("DEMO_METRICS_TOKEN"):
    _auth["TOKENS"] = [os.environ["DEMO_METRICS_TOKEN"]]

PYTHEUS: dict[str, Any] = {
    "AUTH": _auth,
    # Applied and unapplied migrations (the dashboard's panel, the DjangoUnappliedMigrations
    # alert) and the shop's orders as model operations.
    "MIGRATION_METRICS": True,
    "MODEL_METRICS": ["shop.Order", "shop.Product"],
    # The checkout's confirmation e-mail is a Celery task (see Celery below).
    "CELERY": True,
}
if REDIS_URL:
    PYTHEUS["BACKEND"] = "pytheus.backends.redis.MultiProcessRedisBackend"
    # The cache's connection settings, in the next database: cache.clear() (FLUSHDB)
    # empties the cache's database only (check django_pytheus.W005).
    PYTHEUS["BACKEND_CONFIG"] = {
        "CACHE": "default",
        "db": int(urlsplit(REDIS_URL).path.strip("/") or 0) + 1,
        "prefix": f"{REDIS_PREFIX}:metrics",
    }

# --------------------------------------------------------------------------- Celery

# The checkout's confirmation e-mail is a Celery task. With Redis, Redis is the broker and
# a worker runs it (docker compose's "worker" service; or `celery -A demo_project worker`);
# without, it runs in the web process as it is called, so `make demo` needs nothing more.
EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_IGNORE_RESULT = True
# A checkout must not wait for a broker that is down: one try, then the e-mail is lost
# (logged), not the order.
CELERY_TASK_PUBLISH_RETRY = False
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "short_demo_errors": {"()": "demo_project.log.ShortDemoErrors"},
        "short_cache_errors": {"()": "demo_project.log.ShortCacheErrors"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        # Django's own handlers (the console with DEBUG on) still print these records.
        "django.request": {"filters": ["short_demo_errors"]},
        # The cache errors django-redis ignores (IGNORE_EXCEPTIONS above).
        "demo_project.cache": {
            "handlers": ["console"],
            "filters": ["short_cache_errors"],
            "propagate": False,
        },
    },
}
