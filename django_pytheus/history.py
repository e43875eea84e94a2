"""Earlier readings of the metrics, kept in this process, for rates over a time window.

Counters, histogram counts and summary counts only ever go up, so what happened
*recently* is the difference between the values now and the values some time ago. Each
time the admin dashboard reads a family (a page, a poll), it hands the values of all
its series to :class:`History` as a :class:`Reading`, and gets back a :class:`Window`:
the readings of that family over the last ``seconds``, from which per-second rates and
histogram quantiles over the window (from bucket differences) are computed.

A restarted worker or a Redis restarted empty makes a value go *down*. As PromQL's
``rate()`` does, a value lower than the one before it means the series started again
from zero, so the whole new value counts as increase. A series that did not exist in
an earlier reading (a view first requested during the window) counts from zero.

Unlike ``rate()``, the increase is not extrapolated to the window's edges: it is
divided by the time between the first and the last reading, which :attr:`Window.span`
reports and the page shows ("last 58 s").

Memory: readings are thinned out as they age (one per sixth of its age: many recent
ones, few old ones), dropped after :data:`MAX_AGE`, and all families together keep at
most ``max_values`` numbers (8 bytes each), oldest readings dropped first. With the
Redis backend every process keeps its own readings of the shared values, so each one
computes correct rates once it has answered twice.
"""

from __future__ import annotations

import operator
import threading
from array import array
from collections.abc import Iterable, Sequence

__all__ = ["MAX_AGE", "History", "Reading", "Window"]

#: Readings older than this are dropped (the longest window is 15 minutes).
MAX_AGE = 16 * 60.0
#: A window shorter than this is noise: its first reading must be older.
MIN_SPAN = 1.0
#: Readings closer together than this are thinned out...
MIN_GAP = 1.0
#: ... and, as they age, closer than their age divided by this.
SPACING = 6.0
#: All readings together keep at most this many numbers (24 MB).
MAX_VALUES = 3_000_000


class Reading:
    """The values of every series of one family at one moment.

    ``width`` numbers per series, in ``data``: a counter's value; a histogram's
    cumulative bucket counts (``+Inf`` last) then its sum; a summary's count then its
    sum. ``totals`` holds the number that only goes up (the value, the count), used to
    detect resets cheaply. ``layout`` tells readings of different layouts apart (other
    buckets after a deploy): they are never compared.
    """

    __slots__ = ("time", "keys", "width", "total_index", "data", "totals", "layout", "resets")

    def __init__(
        self,
        time: float,
        keys: dict[str, int],
        *,
        width: int,
        total_index: int,
        data: array[float],
        totals: array[float],
        layout: object = None,
    ) -> None:
        self.time = time
        self.keys = keys  # series key -> index
        self.width = width
        self.total_index = total_index  # where the number that only goes up sits
        self.data = data
        self.totals = totals
        self.layout = layout
        # Series whose total went down since the reading kept before this one: they
        # restarted from zero. Kept across thinning (a dropped reading's pass to the next).
        self.resets: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls,
        time: float,
        series: Iterable[tuple[str, Sequence[float]]],
        *,
        width: int,
        total_index: int,
        layout: object = None,
        previous: Reading | None = None,
    ) -> Reading:
        """A reading of ``(key, vector)`` pairs, each vector ``width`` long; the key
        index of ``previous`` is shared when the keys are the same (they mostly are)."""
        keys: dict[str, int] = {}
        data: array[float] = array("d")
        totals: array[float] = array("d")
        for key, vector in series:
            keys[key] = len(keys)
            data.extend(vector)
            totals.append(vector[total_index])
        if previous is not None and previous.keys == keys:
            keys = previous.keys
        return cls(
            time,
            keys,
            width=width,
            total_index=total_index,
            data=data,
            totals=totals,
            layout=layout,
        )

    @classmethod
    def of_arrays(
        cls,
        time: float,
        keys: Sequence[str],
        data: array[float],
        totals: array[float],
        *,
        width: int,
        total_index: int,
        layout: object = None,
        previous: Reading | None = None,
    ) -> Reading:
        """A reading of ``keys`` whose vectors lie end to end in ``data`` (``width`` each)
        and whose totals are in ``totals``, as :meth:`of` makes them: for a family of
        10,000 series, built without a Python step per number."""
        index = dict(zip(keys, range(len(keys)), strict=True))
        if previous is not None and previous.keys == index:
            index = previous.keys
        return cls(
            time, index, width=width, total_index=total_index, data=data, totals=totals,
            layout=layout,
        )  # fmt: skip

    @property
    def size(self) -> int:
        return len(self.data)

    def vector(self, key: str) -> list[float] | None:
        i = self.keys.get(key)
        if i is None:
            return None
        w = self.width
        return self.data[i * w : (i + 1) * w].tolist()

    def total(self, key: str) -> float | None:
        i = self.keys.get(key)
        return None if i is None else self.totals[i]

    def went_down(self, before: Reading) -> frozenset[str]:
        """The series whose total is lower here than in ``before`` (restarted)."""
        if before.keys is self.keys:  # the same series in the same order: the usual case
            return frozenset(
                key
                for key, a, b in zip(self.keys, before.totals, self.totals, strict=True)
                if b < a
            )
        down = []
        for key, i in self.keys.items():
            j = before.keys.get(key)
            if j is not None and self.totals[i] < before.totals[j]:
                down.append(key)
        return frozenset(down)


class Window:
    """The readings of one family over a window, ending with the current one.

    ``span`` is the time between the first and the last reading: 0 when there is no
    earlier reading (the page then shows totals since start only).
    """

    def __init__(self, current: Reading, earlier: list[Reading] | None = None) -> None:
        self.current = current
        self.earlier = earlier or []  # oldest first
        # Which series restarted at each step, as known now: thinning may later move
        # a dropped reading's resets to a reading of this window.
        self._steps = tuple(r.resets for r in (*self.earlier[1:], current))
        self._resets = frozenset().union(*self._steps) if self.earlier else frozenset()
        self._diff: list[float] | None = None
        self._diffed = False
        self._totals: dict[str, float] | None = None

    @property
    def span(self) -> float:
        return self.current.time - self.earlier[0].time if self.earlier else 0.0

    @property
    def start(self) -> float:
        return self.earlier[0].time if self.earlier else self.current.time

    def increase(self, key: str) -> list[float] | None:
        """What the series ``key`` added over the window (vector), resets included;
        None without an earlier reading or when the series is gone."""
        current = self.current
        i = current.keys.get(key)
        if i is None or not self.earlier:
            return None
        if key in self._resets:
            return self._increase_with_resets(key)
        w = current.width
        bulk = self._bulk()
        if bulk is not None:
            return bulk[i * w : (i + 1) * w]
        now = current.data[i * w : (i + 1) * w]
        base = self.earlier[0]
        j = base.keys.get(key)
        if j is None:  # not there yet: counted from zero
            return now.tolist()
        return list(map(operator.sub, now, base.data[j * w : (j + 1) * w]))

    def total_increases(self) -> dict[str, float]:
        """What each series' total (a counter's value, a histogram's count) added over
        the window, resets included; worked out for all series at once."""
        if self._totals is None:
            current, base = self.current, self.earlier[0]
            if base.keys is current.keys:
                out = dict(zip(current.keys, map(operator.sub, current.totals, base.totals),
                               strict=True))  # fmt: skip
            else:
                out = {}
                for key, i in current.keys.items():
                    j = base.keys.get(key)
                    out[key] = current.totals[i] - (base.totals[j] if j is not None else 0.0)
            for key in self._resets & out.keys():
                out[key] = self._increase_with_resets(key)[current.total_index]
            self._totals = out
        return self._totals

    def _bulk(self) -> list[float] | None:
        """Every series' increase at once, when the first and the last reading hold the
        same series in the same order (the usual case): one subtraction in C."""
        if not self._diffed:
            base, current = self.earlier[0], self.current
            if base.keys is current.keys and base.width == current.width:
                self._diff = list(map(operator.sub, current.data, base.data))
            self._diffed = True
        return self._diff

    def _increase_with_resets(self, key: str) -> list[float]:
        """The increase step by step, as PromQL's rate() adds it: a step that goes down
        (or that a thinned-out reading saw go down) counts the new value whole."""
        total_index = self.current.total_index
        previous = self.earlier[0].vector(key)
        out: list[float] | None = None
        for reading, resets in zip((*self.earlier[1:], self.current), self._steps, strict=True):
            vector = reading.vector(key)
            if vector is None:
                continue
            if previous is None:
                step = vector  # not there before: counted from zero
            elif key in resets or vector[total_index] < previous[total_index]:
                step = vector  # started again from zero: all of the new value is new
            else:
                step = [v - p for v, p in zip(vector, previous, strict=True)]
            out = step if out is None else [o + v for o, v in zip(out, step, strict=True)]
            previous = vector
        return out if out is not None else [0.0] * self.current.width

    def rate(self, key: str) -> float | None:
        """Per second over the window, of the number that only goes up."""
        span = self.span
        if span <= 0:
            return None
        increase = self.increase(key)
        if increase is None:
            return None
        return increase[self.current.total_index] / span


class History:
    """Recent readings per family, thinned as they age; thread-safe.

    >>> history = History()
    >>> first = Reading.of(0.0, [("", [10.0])], width=1, total_index=0)
    >>> history.observe("jobs", first, 60).span
    0.0
    >>> later = Reading.of(5.0, [("", [20.0])], width=1, total_index=0)
    >>> history.observe("jobs", later, 60).rate("")
    2.0
    """

    def __init__(self, max_values: int = MAX_VALUES) -> None:
        self.max_values = max_values
        self._lock = threading.Lock()
        self._readings: dict[str, list[Reading]] = {}
        self._values = 0

    def latest(self, name: str) -> Reading | None:
        with self._lock:
            readings = self._readings.get(name)
            return readings[-1] if readings else None

    def observe(self, name: str, reading: Reading, seconds: float) -> Window:
        """Keep ``reading`` and return the window of the last ``seconds`` ending at it."""
        with self._lock:
            readings = self._readings.setdefault(name, [])
            if readings and readings[-1].layout != reading.layout:
                self._values -= sum(r.size for r in readings)
                readings.clear()  # buckets or labels changed: old readings do not compare
            if readings:
                reading.resets = reading.went_down(readings[-1])
            earlier = [r for r in readings if r.time < reading.time - MIN_SPAN * 0.999]
            window = Window(reading, _window(earlier, reading.time, seconds))
            readings.append(reading)
            readings.sort(key=lambda r: r.time)  # concurrent requests may finish out of order
            self._values += reading.size
            self._thin(readings, reading.time)
            self._limit()
        return window

    def forget(self) -> None:
        with self._lock:
            self._readings.clear()
            self._values = 0

    def _thin(self, readings: list[Reading], now: float) -> None:
        kept: list[Reading] = []
        carried: frozenset[str] = frozenset()  # resets seen by readings dropped here
        for reading in readings[:-1]:
            age = now - reading.time
            gap = max(MIN_GAP, age / SPACING)
            if age > MAX_AGE or (kept and reading.time - kept[-1].time < gap):
                self._values -= reading.size
                carried |= reading.resets
                continue
            if carried and kept:
                reading.resets |= carried
            carried = frozenset()
            kept.append(reading)
        newest = readings[-1]
        if carried and kept:
            newest.resets |= carried
        kept.append(newest)
        readings[:] = kept

    def _limit(self) -> None:
        while self._values > self.max_values:
            # The oldest reading of the largest family goes first; never a newest one.
            name = max(
                (n for n, rs in self._readings.items() if len(rs) > 1),
                key=lambda n: self._readings[n][0].size,
                default=None,
            )
            if name is None:
                return
            self._values -= self._readings[name].pop(0).size


def _window(earlier: list[Reading], now: float, seconds: float) -> list[Reading]:
    """The readings of a window: those of the last ``seconds``; when there are none,
    the most recent one before (the page then shows the longer span it covers)."""
    inside = [r for r in earlier if r.time >= now - seconds]
    if inside:
        return inside
    return earlier[-1:]
