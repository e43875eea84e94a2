"""The default collectors: process, platform and garbage collector."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pytheus.collectors import (
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    register_default_collectors,
    unregister_default_collectors,
)
from pytheus.registry import REGISTRY, CollectorRegistry
from tests.core.helpers import Parsed

Scrape = Callable[..., tuple[Parsed, Parsed]]


def test_default_collectors_pass_promtool_and_both_parsers(
    registry: CollectorRegistry, exposition: Scrape
) -> None:
    register_default_collectors(registry)
    text, om = exposition()
    for parsed in (text, om):
        names = parsed.names()
        assert {
            "process_cpu_seconds_total",
            "process_virtual_memory_bytes",
            "process_resident_memory_bytes",
            "process_start_time_seconds",
            "process_open_fds",
            "process_max_fds",
            "python_info",
            "python_gc_objects_collected_total",
            "python_gc_objects_uncollectable_total",
            "python_gc_collections_total",
        } <= names
    info = {
        k: v for (name, labels), _ in om.samples.items() if name == "python_info" for k, v in labels
    }
    assert info["version"] == platform.python_version()
    assert info["implementation"] == platform.python_implementation()
    assert om.types["python"] == "info"
    assert text.value("python_gc_collections_total", {"generation": "0"}) >= 0
    start = text.value("process_start_time_seconds")
    assert time.time() - 86400 * 365 < start <= time.time() + 1
    assert text.value("process_open_fds") >= 3
    assert text.value("process_resident_memory_bytes") > 1_000_000


def test_process_collector_of_another_pid_and_without_proc(tmp_path: Path) -> None:
    parent = list(ProcessCollector(pid=os.getppid()).collect())
    assert {f.name for f in parent} >= {"process_cpu_seconds", "process_start_time_seconds"}
    assert list(ProcessCollector(proc=str(tmp_path / "no-proc")).collect()) == []


def test_unregister_default_collectors(registry: CollectorRegistry) -> None:
    register_default_collectors(registry)
    assert len(registry.collectors()) == 3
    unregister_default_collectors()  # the current global registry
    assert registry.collectors() == []
    assert list(registry.collect()) == []
    register_default_collectors(registry)  # and back
    assert {type(c) for c in registry.collectors()} == {
        ProcessCollector,
        PlatformCollector,
        GCCollector,
    }


def test_unregister_default_collectors_through_the_proxy(registry: CollectorRegistry) -> None:
    """``REGISTRY`` is what users hold: passing it must reach the registry it stands for."""
    register_default_collectors(registry)
    unregister_default_collectors(REGISTRY)
    assert registry.collectors() == []
    register_default_collectors(REGISTRY)
    assert len(registry.collectors()) == 3
    unregister_default_collectors(registry)
    assert registry.collectors() == []


def test_the_process_default_registry_has_the_default_collectors() -> None:
    # In a fresh interpreter: importing any part of pytheus registers them on REGISTRY.
    code = (
        "from pytheus.registry import REGISTRY\n"
        "from pytheus.collectors import unregister_default_collectors\n"
        "print(sorted(type(c).__name__ for c in REGISTRY.collectors()))\n"
        "unregister_default_collectors()\n"
        "print(REGISTRY.collectors())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "['GCCollector', 'PlatformCollector', 'ProcessCollector']",
        "[]",
    ]
