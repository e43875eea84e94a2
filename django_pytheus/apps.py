"""The app config: ``ready()`` connects what the app needs and starts it.

In ``ready()``, as Django's own apps do, and never as a side effect of an import:

* the system checks (:mod:`django_pytheus.checks`) are registered;
* the signal receivers are connected: ``got_request_exception`` (the type of an
  unhandled exception, for ``http_exceptions_total``) and ``setting_changed`` (a test
  changing ``PYTHEUS`` or ``CACHES`` clears the parsed settings);
* :func:`django_pytheus.startup.start` validates the settings, loads the backend,
  defines the metrics and installs the instrumentation, with no network or database
  I/O (see :mod:`django_pytheus.startup`).

``ready()`` may run more than once (tests call it); every step is idempotent.
"""

from __future__ import annotations

from django.apps import AppConfig
from django.core.checks import register
from django.core.signals import got_request_exception, setting_changed

from django_pytheus import checks, conf, context, startup

__all__ = ["PytheusConfig"]


class PytheusConfig(AppConfig):
    name = "django_pytheus"
    verbose_name = "Prometheus metrics (pytheus)"

    def ready(self) -> None:
        for check, tags, deploy in checks.CHECKS:
            register(check, *tags, deploy=deploy)
        got_request_exception.connect(
            context.note_exception, dispatch_uid="django_pytheus.context.note_exception"
        )
        setting_changed.connect(
            conf.settings_changed, dispatch_uid="django_pytheus.conf.settings_changed"
        )
        startup.start()
