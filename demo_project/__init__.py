"""The demo: a small shop on Django, instrumented by django_pytheus (``make demo``)."""

# Loaded with Django, so that the shop's tasks find their app (and its broker).
from demo_project.celery import app as celery_app

__all__ = ["celery_app"]
