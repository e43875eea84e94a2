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
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    # The live server of the admin's browser tests serves the admin's and our static files.
    "django.contrib.staticfiles",
    "django_pytheus",
    "tests.django_app.testapp",
]

MIDDLEWARE = [
    "django_pytheus.middleware.PytheusMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
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

# For the admin dashboard (tests/django_app/test_admin_*.py).
TEMPLATES: list[dict[str, object]] = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    }
]
STATIC_URL = "/static/"

# The tests assert on exact values; an AUTH-less /metrics is what most of them scrape.
PYTHEUS: dict[str, object] = {}
SILENCED_SYSTEM_CHECKS = ["django_pytheus.W004"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Expected 500s in tests would otherwise print tracebacks.
    "loggers": {"django.request": {"level": "CRITICAL"}},
}
