"""``manage.py demo_setup``: what ``make demo`` runs before the server.

Applies migrations, seeds the shop, makes sure an admin user exists, and prints where to
look. The admin's password is generated here, at random, and printed once: the demo
ships no password. Safe to run again.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from demo_project.commands import manage_py
from demo_project.shop.views import dashboard_url
from pytheus.backends import MemoryBackend, get_backend


class Command(BaseCommand):
    help = "Migrate, seed the demo shop, create the admin user, and say where to look."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--url",
            default="http://127.0.0.1:8000/",
            help="where the server will answer, for the instructions printed",
        )
        parser.add_argument("--admin-username", default="admin")

    def handle(self, *args: Any, **options: Any) -> None:
        verbosity = options["verbosity"]
        call_command("migrate", interactive=False, verbosity=max(verbosity - 1, 0))
        call_command("seed_demo", verbosity=verbosity, stdout=self.stdout)
        login = self._admin_user(options["admin_username"])
        base = options["url"].rstrip("/")
        dashboard = ""
        if (path := dashboard_url()) is not None:
            dashboard = f"  {base}{path}    the metrics dashboard (same login)\n"
        backend = get_backend()
        if isinstance(backend, MemoryBackend):
            where = (
                "in-memory backend (one process; set PYTHEUS_REDIS_URL=redis://127.0.0.1:6379/0 "
                "for the Redis backend)"
            )
        else:
            where = f"{type(backend).__name__} ({backend!r})"
        traffic = manage_py("generate_traffic", "--url", f"{base}/", "--requests", "200")
        self.stdout.write(
            "\n"
            "The demo is ready. Once the server has started:\n"
            f"  {base}/          the shop, with a link to every view\n"
            f"  {base}/metrics   what Prometheus scrapes\n"
            f"  {base}/admin/    the Django admin: {login}\n"
            f"{dashboard}"
            f"Metrics: {where}.\n"
            f"Database: {settings.DATABASES['default']['NAME']}\n"
            f"More traffic: {traffic}\n"
        )

    def _admin_user(self, username: str) -> str:
        User = get_user_model()
        if User.objects.filter(username=username).exists():
            return (
                f"user {username!r}, the password printed when it was created "
                f"(forgot it? {manage_py('changepassword', username)})"
            )
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
        return f"user {username!r}, password {password!r} (generated now, shown only this once)"
