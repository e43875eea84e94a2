"""WSGI entry point: ``gunicorn demo_project.wsgi`` (docker-compose.yaml runs it with 4 workers)."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_project.settings")

application = get_wsgi_application()
