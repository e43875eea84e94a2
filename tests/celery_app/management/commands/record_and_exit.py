"""A management command as a cron job runs one: it records metrics, then ends (by
returning, raising, or sys.exit) before any periodic flush could send them."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from pytheus.metrics import Counter, Histogram

RUNS = Counter("cron_runs", "Runs of the cron job.", ["how"])
ITEMS = Histogram("cron_batch_items", "Items per batch.", buckets=[10, 100])


class Command(BaseCommand):
    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("how", choices=["return", "raise", "exit", "error"])

    def handle(self, *args: Any, how: str, **options: Any) -> None:
        RUNS.labels(how=how).inc()
        for size in (5, 50, 500):
            ITEMS.observe(size)
        if how == "raise":
            raise RuntimeError("the job failed")
        if how == "error":
            raise CommandError("the job refused", returncode=2)
        if how == "exit":
            sys.exit(3)
