from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

if settings.DJANGO_PROMETHEUS:
    from django_prometheus.models import ExportModelOperationsMixin

    bases: tuple[Any, ...] = (ExportModelOperationsMixin("note"), models.Model)
else:
    bases = (models.Model,)  # MODEL_METRICS counts it through signals


class Note(*bases):  # type: ignore[misc]
    """A row to insert, update and delete."""

    text = models.CharField(max_length=100, unique=True)

    class Meta:
        app_label = "compat_site"
