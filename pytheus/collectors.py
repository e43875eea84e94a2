"""Collectors registered on the default registry: process, platform and garbage collector.

They are ordinary collectors (see :class:`pytheus.registry.Collector`), and register
themselves on the global registry when this module is imported (``import pytheus`` does).
To turn them off::

    from pytheus.collectors import unregister_default_collectors

    unregister_default_collectors()

or start from an empty registry with ``set_registry(CollectorRegistry())``.
"""

from __future__ import annotations

import gc
import os
import platform
import resource
import weakref
from collections.abc import Iterator

from pytheus.registry import (
    Collector,
    CustomCollector,
    Registry,
    get_registry,
    real_registry,
)
from pytheus.samples import MetricFamily

__all__ = [
    "CustomCollector",
    "GCCollector",
    "PlatformCollector",
    "ProcessCollector",
    "register_default_collectors",
    "unregister_default_collectors",
]


def _boot_time() -> float:
    try:
        with open("/proc/stat", "rb") as f:
            for line in f:
                if line.startswith(b"btime "):
                    return float(line.split()[1])
    except OSError:
        pass
    return 0.0


class ProcessCollector:
    """CPU, memory, file descriptors and start time of this process, read from ``/proc``.

    Yields nothing where ``/proc`` does not exist (macOS, Windows).
    """

    def __init__(self, pid: int | None = None, proc: str = "/proc") -> None:
        self._pid = pid
        self._proc = proc
        self._ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._pagesize = resource.getpagesize()
        self._btime = _boot_time()

    def describe(self) -> list[str]:
        return [
            "process_cpu_seconds_total",
            "process_virtual_memory_bytes",
            "process_resident_memory_bytes",
            "process_start_time_seconds",
            "process_open_fds",
            "process_max_fds",
        ]

    def collect(self) -> Iterator[MetricFamily]:
        base = f"{self._proc}/{self._pid or 'self'}"
        try:
            with open(f"{base}/stat", "rb") as f:
                # The command name (field 2) may contain spaces: split after its ")".
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            return
        utime, stime = float(fields[11]), float(fields[12])
        yield MetricFamily(
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
        ).add((utime + stime) / self._ticks)
        yield MetricFamily(
            "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes."
        ).add(float(fields[20]))
        yield MetricFamily(
            "process_resident_memory_bytes", "gauge", "Resident memory size in bytes."
        ).add(float(fields[21]) * self._pagesize)
        yield MetricFamily(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
        ).add(self._btime + float(fields[19]) / self._ticks)
        try:
            fds = len(os.listdir(f"{base}/fd"))
        except OSError:
            pass
        else:
            yield MetricFamily("process_open_fds", "gauge", "Number of open file descriptors.").add(
                float(fds)
            )
        try:
            with open(f"{base}/limits") as f:
                for line in f:
                    if line.startswith("Max open files"):
                        yield MetricFamily(
                            "process_max_fds", "gauge", "Maximum number of open file descriptors."
                        ).add(float(line.split()[3]))
                        break
        except (OSError, ValueError, IndexError):
            pass


class PlatformCollector:
    """The Python implementation and version, as ``python_info``."""

    def __init__(self) -> None:
        major, minor, patch = platform.python_version_tuple()
        self._labels = {
            "implementation": platform.python_implementation(),
            "major": major,
            "minor": minor,
            "patchlevel": patch,
            "version": platform.python_version(),
        }

    def describe(self) -> list[str]:
        return ["python_info"]

    def collect(self) -> Iterator[MetricFamily]:
        yield MetricFamily("python", "info", "Python platform information.").add(1.0, self._labels)


class GCCollector:
    """Collections, collected and uncollectable objects per garbage-collector generation."""

    def describe(self) -> list[str]:
        return [
            "python_gc_objects_collected_total",
            "python_gc_objects_uncollectable_total",
            "python_gc_collections_total",
        ]

    def collect(self) -> Iterator[MetricFamily]:
        collected = MetricFamily(
            "python_gc_objects_collected_total", "counter", "Objects collected during gc."
        )
        uncollectable = MetricFamily(
            "python_gc_objects_uncollectable_total",
            "counter",
            "Uncollectable objects found during gc.",
        )
        collections = MetricFamily(
            "python_gc_collections_total",
            "counter",
            "Number of times this generation was collected.",
        )
        for generation, stat in enumerate(gc.get_stats()):
            labels = {"generation": str(generation)}
            collected.add(float(stat["collected"]), labels)
            uncollectable.add(float(stat["uncollectable"]), labels)
            collections.add(float(stat["collections"]), labels)
        yield collected
        yield uncollectable
        yield collections


# Keyed by the registry itself, never by the REGISTRY proxy (which stands for different
# registries over time), and weakly: an id() would be reused once a registry is gone.
_DEFAULTS: weakref.WeakKeyDictionary[object, list[Collector]] = weakref.WeakKeyDictionary()


def register_default_collectors(registry: Registry) -> None:
    """Register the process, platform and GC collectors on ``registry``."""
    target = real_registry(registry)
    collectors: list[Collector] = [ProcessCollector(), PlatformCollector(), GCCollector()]
    for c in collectors:
        target.register(c)
    _DEFAULTS[target] = collectors


def unregister_default_collectors(registry: Registry | None = None) -> None:
    """Remove the default collectors from ``registry`` (the current global one by default)."""
    target = real_registry(registry) if registry is not None else get_registry()
    for c in _DEFAULTS.pop(target, []):
        target.unregister(c)


# The registry REGISTRY stands for at start-up gets them (fresh registries do not).
register_default_collectors(get_registry())
