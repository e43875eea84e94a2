"""``manage.py pytheus_status``: what the metrics backend holds, for an operator at a shell.

Prints the backend, whether it could be read (and how long that took), the processes
reporting to it with the age of their last flush, this process's pending series, and
every family with its type and number of series. Exits with status 1 when the backend
cannot be read (Redis down, wrong URL), so a script or a health check can act on it.
``--json`` prints the same as one JSON object.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_pytheus.startup import raise_setup_error
from pytheus.backends import get_backend
from pytheus.exceptions import BackendUnavailableError
from pytheus.registry import REGISTRY
from pytheus.samples import MetricFamily


def series_count(family: MetricFamily) -> int:
    """Series of a family: distinct label sets, bucket and quantile labels aside."""
    aside = {"le", "quantile"}
    if family.type == "stateset":
        aside.add(family.name)
    created = f"{family.name}_created"
    return len(
        {
            frozenset((k, v) for k, v in s.labels.items() if k not in aside)
            for s in family.samples
            if s.name != created
        }
    )


def status() -> dict[str, Any]:
    """Everything the command prints; raises BackendUnavailableError."""
    backend = get_backend()
    own = getattr(backend, "status", None)
    health: dict[str, Any] = own() if callable(own) else {}
    start = time.perf_counter()
    families = list(REGISTRY.collect())
    took = time.perf_counter() - start
    processes = getattr(backend, "processes", None)
    reporting = processes() if callable(processes) else None
    return {
        "backend": repr(backend),
        "reachable": True,
        "read_seconds": took,
        "processes": None
        if reporting is None
        else [{"process": p, "last_flush_seconds_ago": age} for p, age in reporting],
        "pending_series": health.get("pending_series", 0),
        "families": [
            {"name": f.name, "type": f.type, "series": series_count(f)}
            for f in sorted(families, key=lambda f: f.name)
        ],
    }


def _table(rows: Iterable[tuple[str, ...]]) -> list[str]:
    rows = list(rows)
    if not rows:
        return []
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]


class Command(BaseCommand):
    help = (
        "Show the metrics backend, whether it can be read, the processes reporting to it, "
        "pending series and the families with their series counts. Exits with 1 when the "
        "backend cannot be read."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")

    def handle(self, *args: Any, **options: Any) -> None:
        raise_setup_error()
        try:
            result = status()
        except BackendUnavailableError as exc:
            if options["json"]:
                self.stdout.write(
                    json.dumps(
                        {"backend": repr(get_backend()), "reachable": False, "error": str(exc)}
                    )
                )
            raise CommandError(f"The metrics backend cannot be read: {exc}", returncode=1) from exc
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=2))
            return
        out = [f"backend:   {result['backend']}"]
        out.append(f"reachable: yes (read in {result['read_seconds'] * 1000:.1f} ms)")
        processes = result["processes"]
        if processes is None:
            out.append("processes: this one only (an in-memory backend)")
        else:
            out.append(f"processes reporting: {len(processes)}")
            out += _table(
                (p["process"], f"last flush {p['last_flush_seconds_ago']:.1f} s ago")
                for p in processes
            )
        out.append(f"pending series (this process): {result['pending_series']}")
        families = result["families"]
        out.append(f"families: {len(families)}")
        out += _table((f["name"], f["type"], f"{f['series']} series") for f in families)
        self.stdout.write("\n".join(out))
