"""The moving window of observations behind a summary's quantiles."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence

__all__ = ["QuantileWindow"]

_NAN = math.nan


class QuantileWindow:
    """Observations of the last ``max_age`` seconds, for summary quantiles.

    The window is split into ``age_buckets`` slices that rotate, so old observations
    leave in steps of ``max_age / age_buckets``. Each slice keeps at most ``capacity``
    observations, sampled uniformly (reservoir sampling) once it is full, so memory is
    bounded whatever the traffic; each kept observation then stands for
    ``seen / kept`` observations when quantiles are computed.
    """

    __slots__ = ("_slices", "_seen", "_head", "_step", "_rotate_at", "_capacity")

    def __init__(self, max_age: float, age_buckets: int, capacity: int = 1024) -> None:
        self._slices: list[list[float]] = [[] for _ in range(age_buckets)]
        self._seen = [0] * age_buckets
        self._head = 0
        self._step = max_age / age_buckets
        self._rotate_at = time.monotonic() + self._step
        self._capacity = capacity

    def _rotate(self, now: float) -> None:
        n = len(self._slices)
        steps = min(n, int((now - self._rotate_at) // self._step) + 1)
        for _ in range(steps):
            self._head = (self._head + 1) % n
            self._slices[self._head] = []
            self._seen[self._head] = 0
        self._rotate_at += self._step * (int((now - self._rotate_at) // self._step) + 1)

    def add(self, value: float) -> None:
        """Keep ``value`` in the current slice (or sample it in, once the slice is full)."""
        now = time.monotonic()
        if now >= self._rotate_at:
            self._rotate(now)
        head = self._head
        kept = self._slices[head]
        self._seen[head] += 1
        if len(kept) < self._capacity:
            kept.append(value)
        else:
            j = random.randrange(self._seen[head])
            if j < self._capacity:
                kept[j] = value

    def quantiles(self, qs: Sequence[float]) -> tuple[tuple[float, float], ...]:
        """``(q, value)`` for each of ``qs`` over the window; NaN while it is empty."""
        now = time.monotonic()
        if now >= self._rotate_at:
            self._rotate(now)
        weighted: list[tuple[float, float]] = []
        for kept, seen in zip(self._slices, self._seen, strict=True):
            if kept:
                weight = seen / len(kept)
                weighted.extend((v, weight) for v in kept)
        if not weighted:
            return tuple((q, _NAN) for q in qs)
        weighted.sort()
        total = sum(w for _, w in weighted)
        result = []
        for q in qs:
            target, acc = q * total, 0.0
            value = weighted[-1][0]
            for v, w in weighted:
                acc += w
                if acc >= target:
                    value = v
                    break
            result.append((q, value))
        return tuple(result)
