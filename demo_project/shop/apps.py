from __future__ import annotations

from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "demo_project.shop"
    label = "shop"
    verbose_name = "Demo shop"

    def ready(self) -> None:
        # The business metrics are defined here, once django_pytheus (listed before this
        # app in INSTALLED_APPS) has loaded the backend: whether the summary may keep
        # quantiles depends on it.
        from demo_project.shop import metrics  # noqa: F401
