"""The admin's handle on the metrics: a model without a table.

:class:`Metric` exists so that the admin lists "Metrics" under the app's heading and so
that Django creates the ``django_pytheus.view_metric`` permission (its migration makes
the content type and the permission, never a table). No query ever reads it: the
dashboard (:mod:`django_pytheus.admin`) shows the registry's live values.
"""

from __future__ import annotations

from django.db import models

__all__ = ["Metric"]


class Metric(models.Model):
    """A metric family, as the admin names it; grant ``view_metric`` to see the dashboard."""

    name = models.CharField(max_length=255, primary_key=True)

    class Meta:
        managed = False  # no table: the values live in the registry and its backend
        db_table = "django_pytheus_metric"
        verbose_name = "metric"
        verbose_name_plural = "metrics"
        # Only "view": metrics are defined in code, never added, changed or deleted here.
        default_permissions = ("view",)

    def __str__(self) -> str:
        return self.name
