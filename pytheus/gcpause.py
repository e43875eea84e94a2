"""Building a large scrape without pauses of Python's cyclic garbage collector.

A scrape builds a few objects per sample: a process's first scrape of 100,000 series from
Redis makes over a million, none of them in a reference cycle. The collector, woken every
700 allocations, scanned them again and again: 40% of that scrape. Reference counting,
which frees almost everything, never pauses; only the cyclic collector is turned off, and
only around work that is pure computation on data already at hand::

    with gc_paused():
        families = build(replies)

Never around I/O: a read blocked on Redis (or a custom collector blocked on anything) would
hold the collector off, for every thread of the application, for as long as it waits.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["gc_paused"]

_lock = threading.Lock()
_pausers = 0  # blocks under way that found the collector on, or joined one that did


@contextmanager
def gc_paused() -> Iterator[None]:
    """Run the block with the cyclic garbage collector off, if it is on.

    Blocks may overlap (threads scraping at once): the collector is turned on again when
    the last of them ends, and then collects what they (and the application's other
    threads meanwhile) left. A collector the application turned off itself stays off.
    """
    global _pausers
    with _lock:
        joined = gc.isenabled() or _pausers > 0
        if joined:
            gc.disable()
            _pausers += 1
    try:
        yield
    finally:
        if joined:
            with _lock:
                _pausers -= 1
                if not _pausers:
                    gc.enable()
