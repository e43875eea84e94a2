"""The Celery app of the test site, as a Django project writes it (no pytheus code here:
``PYTHEUS["CELERY"]`` instruments it when Django is set up)."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.celery_app.settings")

app = Celery("tests.celery_app")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["tests.celery_app"])
