"""Every system check id, triggered and passed, and the start-up errors behind E001/E003."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import Client
from django.test.utils import override_settings

from django_pytheus import startup
from tests import settings as test_settings

OURS = "django_pytheus.middleware.PytheusMiddleware"


def ids(**kwargs: object) -> list[str]:
    # As `manage.py check` reports them: SILENCED_SYSTEM_CHECKS left out.
    return sorted(
        m.id
        for m in run_checks(**kwargs)
        if m.id and m.id.startswith("django_pytheus.") and not m.is_silenced()
    )


def test_test_settings_pass_every_check() -> None:
    assert ids(include_deployment_checks=True) == []


@override_settings(PYTHEUS={"LATENCY_BUCKETS": [2, 1]})
def test_e001_bad_settings() -> None:
    (message,) = [m for m in run_checks() if m.id == "django_pytheus.E001"]
    assert "PYTHEUS['LATENCY_BUCKETS'] must be in increasing order" in message.msg
    assert message.hint
    with pytest.raises(SystemCheckError, match=r"django_pytheus\.E001"):
        call_command("check")


@override_settings(PYTHEUS={"AUTH": {"CALLABLE": "tests.nowhere.allow"}})
def test_e001_callable_that_does_not_import() -> None:
    (message,) = [m for m in run_checks() if m.id == "django_pytheus.E001"]
    assert "PYTHEUS['AUTH']['CALLABLE'] = 'tests.nowhere.allow' cannot be imported" in message.msg


@pytest.mark.parametrize(
    ("backend", "text"),
    [
        ("pytheus.backends.nope.Backend", "cannot be imported"),
        ("pytheus.backends.memory.Nope", "has no backend class 'Nope'"),
        ("collections.OrderedDict", "is not a backend class"),
    ],
)
def test_e002_backend_not_importable(backend: str, text: str) -> None:
    with override_settings(PYTHEUS={"BACKEND": backend}):
        (message,) = [m for m in run_checks() if m.id == "django_pytheus.E002"]
    assert text in message.msg
    assert message.hint


def test_e003_backend_fails_to_load_and_servers_refuse_to_start() -> None:
    bad = {"BACKEND": "pytheus.backends.memory.MemoryBackend", "BACKEND_CONFIG": {"x": 1}}
    with override_settings(PYTHEUS=bad):
        apps.get_app_config("django_pytheus").ready()  # does not raise: checks report
        assert isinstance(startup.setup_error(), startup.BackendLoadError)
        assert ids() == ["django_pytheus.E003"]
        # Loading the middleware (a server starting) raises the same error.
        with pytest.raises(ImproperlyConfigured, match="MemoryBackend takes no configuration"):
            Client().get("/hello/")


def test_e003_cache_that_is_not_django_redis() -> None:
    bad = {
        "BACKEND": "pytheus.backends.redis.MultiProcessRedisBackend",
        "BACKEND_CONFIG": {"CACHE": "other"},
    }
    with override_settings(PYTHEUS=bad):
        apps.get_app_config("django_pytheus").ready()
        (message,) = [m for m in run_checks() if m.id == "django_pytheus.E003"]
    assert "only a django-redis cache" in message.msg


def test_e003_sentinels_without_service_name() -> None:
    bad = {
        "BACKEND": "pytheus.backends.redis.MultiProcessRedisBackend",
        "BACKEND_CONFIG": {"sentinels": [["127.0.0.1", 26379]]},
    }
    with override_settings(PYTHEUS=bad):
        apps.get_app_config("django_pytheus").ready()
        (message,) = [m for m in run_checks() if m.id == "django_pytheus.E003"]
    assert "sentinels need the service_name" in message.msg


def test_ready_survives_bad_settings() -> None:
    with override_settings(PYTHEUS={"AUTH": {"TOKEN": ["x"]}}):
        apps.get_app_config("django_pytheus").ready()
        assert ids() == ["django_pytheus.E001"]
        with pytest.raises(ImproperlyConfigured, match="Did you mean 'TOKENS'"):
            Client().get("/metrics")


@override_settings(MIDDLEWARE=[m for m in test_settings.MIDDLEWARE if m != OURS])
def test_w001_middleware_missing() -> None:
    (message,) = [m for m in run_checks() if m.id == "django_pytheus.W001"]
    assert OURS in message.hint


@override_settings(MIDDLEWARE=["django.middleware.common.CommonMiddleware", OURS])
def test_w002_middleware_not_first() -> None:
    (message,) = [m for m in run_checks() if m.id == "django_pytheus.W002"]
    assert "django.middleware.common.CommonMiddleware" in message.msg
    assert "top" in message.hint


@override_settings(MIDDLEWARE=["tests.django_app.test_checks.SubclassedMiddleware"])
def test_a_subclass_counts_as_the_middleware() -> None:
    assert ids() == []


@override_settings(ROOT_URLCONF="tests.django_app.testapp.urls_without_metrics")
def test_w003_url_not_included() -> None:
    (message,) = [m for m in run_checks() if m.id == "django_pytheus.W003"]
    assert 'include("django_pytheus.urls")' in message.hint


@override_settings(SILENCED_SYSTEM_CHECKS=[])
def test_w004_public_metrics_without_debug() -> None:
    assert ids() == ["django_pytheus.W004"]
    with override_settings(DEBUG=True):
        assert ids() == []
    with override_settings(PYTHEUS={"AUTH": {"TOKENS": ["t"]}}):
        assert ids() == []
    with override_settings(PYTHEUS={"AUTH": {"NETWORKS": ["10.0.0.0/8"]}}):
        assert ids() == []


from django_pytheus.middleware import PytheusMiddleware  # noqa: E402


class SubclassedMiddleware(PytheusMiddleware):
    """A project's own subclass of the middleware."""


def test_w007_celery_with_the_memory_backend(pytheus_settings: object) -> None:
    from celery import current_app

    pytheus_settings(CELERY=True)  # type: ignore[operator]
    eager = current_app.conf.task_always_eager
    try:
        current_app.conf.task_always_eager = False
        assert ids() == ["django_pytheus.W007"]
        (message,) = [m for m in run_checks() if m.id == "django_pytheus.W007"]
        assert "MultiProcessRedisBackend" in (message.hint or "")
        # Tasks that run where they are called are counted in this process: no warning.
        current_app.conf.task_always_eager = True
        assert ids() == []
    finally:
        current_app.conf.task_always_eager = eager
