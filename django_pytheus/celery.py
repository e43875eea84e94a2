"""``PYTHEUS["CELERY"] = True``: Celery task and worker metrics in every process of the site.

Set up by the app's ``ready()`` (:func:`django_pytheus.apps.setup`), in web processes
(which publish tasks) and in Celery workers alike: Celery's Django fix-up sets Django up
in the worker before it starts consuming, so nothing else is needed in the project's
``celery.py``. The metrics and their labels are described in
:mod:`pytheus.contrib.celery`.
"""

from __future__ import annotations

from pytheus.registry import get_registry

__all__ = ["install", "uninstall"]


def install() -> None:
    """Define the Celery metrics in the current registry and connect Celery's signals."""
    from pytheus.contrib.celery import instrument

    instrument(registry=get_registry())


def uninstall() -> None:
    """Disconnect them again, if they were installed."""
    import sys

    # Only if it was ever imported: a site without Celery must not import it here.
    contrib = sys.modules.get("pytheus.contrib.celery")
    if contrib is not None:
        contrib.uninstrument()
