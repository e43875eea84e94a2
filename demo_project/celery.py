"""The demo's Celery app, as a Django project writes it: ``celery -A demo_project worker``.

Its tasks (``demo_project/shop/tasks.py``) run in a worker when ``PYTHEUS_REDIS_URL`` is
set (Redis is the broker too), and in the web process, eagerly, without it.
``PYTHEUS["CELERY"]`` records them: the metrics come from Django's set-up, not from here.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_project.settings")

app = Celery("demo_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
