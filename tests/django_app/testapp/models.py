from __future__ import annotations

from django.db import models


class Item(models.Model):
    """A row for the ORM tests."""

    name = models.CharField(max_length=50, unique=True)
    value = models.IntegerField(default=0)

    class Meta:
        app_label = "testapp"
