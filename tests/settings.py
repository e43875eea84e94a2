"""Settings of the Django app's tests (tests/django_app), not of any demo project.

The database is an in-memory SQLite one and the caches are local memory, so the suite
needs no server; tests that need Redis configure it themselves from the fixtures.
"""

from __future__ import annotations

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
ROOT_URLCONF = "tests.django_app.testapp.urls"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django_pytheus",
    "tests.django_app.testapp",
]

MIDDLEWARE = [
    "django_pytheus.middleware.PytheusMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "tests.django_app.testapp.middleware.FailingMiddleware",
]

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}

CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "other": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "other",
    },
}

# Quick hashing: tests log users in.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

TEMPLATES: list[dict[str, object]] = []

# The tests assert on exact values; an AUTH-less /metrics is what most of them scrape.
PYTHEUS: dict[str, object] = {}
SILENCED_SYSTEM_CHECKS = ["django_pytheus.W004"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Expected 500s in tests would otherwise print tracebacks.
    "loggers": {"django.request": {"level": "CRITICAL"}},
}
