"""The Metric model: no table (``managed = False``); migrating creates its content type
and the ``django_pytheus.view_metric`` permission that opens the admin dashboard."""

from __future__ import annotations

from typing import ClassVar

from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies: ClassVar[list[tuple[str, str]]] = []

    operations = [
        migrations.CreateModel(
            name="Metric",
            fields=[
                ("name", models.CharField(max_length=255, primary_key=True, serialize=False)),
            ],
            options={
                "verbose_name": "metric",
                "verbose_name_plural": "metrics",
                "db_table": "django_pytheus_metric",
                "managed": False,
                "default_permissions": ("view",),
            },
        ),
    ]
