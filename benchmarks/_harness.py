"""Side-by-side timing: rows of one operation done by each contender, interleaved.

A *section* is a table (for example "In-process (single process)") built from *rows*.
A row names one operation and says how each side does it: ``theirs`` (the peer the
section compares against, such as prometheus_client) and ``ours``, each a factory
returning a :class:`Case`, the statement to time and the objects it uses::

    Row(
        key="counter_inc",
        label="`Counter.inc()`, no labels",
        unit="ns",
        theirs=lambda: Case("c.inc()", {"c": prometheus_client.Counter(...)}),
        ours=lambda: Case("c.inc()", {"c": pytheus.metrics.Counter(...)}),
        target=0.8,
    )

Each side is calibrated to batches of about ``batch_seconds``; then, round after round,
one batch of each side runs in turn (the side that goes first rotates), so that whatever
the machine does meanwhile (other processes, frequency changes) hits every side alike.
Figures are medians over the rounds. The ratio is the median of the per-round ratios
``ours / theirs``: each pairs batches run back to back, so a slow spell of the machine
cancels out of it, where it would not out of the quotient of two medians taken from
different rounds. The quartiles of the per-round ratios say how far to trust it.

*External columns* (:class:`External`) time rows in another process, such as the original
pytheus 0.6.1, which has our import name and so lives in a virtualenv of its own; their
batches are interleaved with the local ones in the same rounds. A side of a row may also
be a ready :class:`Contender` instead of a :class:`Case`, one timed elsewhere (a forked
process, a worker with another environment), and a row may have a *baseline*: the same
operation in a reference state (a scrape after 1 process, where the row's is after 1,024),
timed in the same rounds, against which the row's target is then a growth.

A row may also have a *reference* (:class:`Reference`): the operation with neither
contender, such as a request to bare Django where the sides are two metrics
middlewares. It is timed in the same rounds, and the row's ratio is then that of the
time each side *adds* to it, round by round: ``(ours - reference) / (theirs - reference)``.

Timing is :mod:`timeit`'s, with its usual choice: the garbage collector is off inside a
batch, for every side alike. This module uses the standard library only, because the
worker that times the original pytheus imports it inside that other virtualenv.
"""

from __future__ import annotations

import contextlib
import gc
import math
import statistics
import sys
import timeit
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

__all__ = [
    "Case",
    "Contender",
    "External",
    "LocalContender",
    "Reference",
    "Row",
    "RowResult",
    "Section",
    "SectionResult",
    "Settings",
    "format_figure",
    "render_table",
    "run_section",
]

Unit = Literal["ns", "us", "ms", "s"]
_PER_SECOND: dict[str, float] = {"ns": 1e9, "us": 1e6, "ms": 1e3, "s": 1.0}


@dataclass(frozen=True)
class Settings:
    """How long to measure: ``rounds`` interleaved batches of ``batch_seconds`` per side."""

    rounds: int = 11
    batch_seconds: float = 0.05
    quick: bool = False


@dataclass(frozen=True)
class Case:
    """One side of a row: ``stmt`` runs with the names of ``namespace`` as local variables.

    ``before``/``after`` run around every batch, outside the timed part (for a switch
    such as prometheus_client's ``disable_created_metrics()`` that must not leak into
    the other rows).
    """

    stmt: str
    namespace: Mapping[str, Any] = field(default_factory=dict)
    before: Callable[[], object] | None = None
    after: Callable[[], object] | None = None

    def timer(self) -> timeit.Timer:
        # Locals, not globals: the timed loop then reads them as cheaply as real code does.
        setup = "\n".join(f"{name} = _ns[{name!r}]" for name in self.namespace) or "pass"
        return timeit.Timer(self.stmt, setup, globals={"_ns": dict(self.namespace)})


class Contender(Protocol):
    """A side of a row, ready to time batches; see :class:`LocalContender`."""

    def batch(self) -> float:
        """Run one batch; return the seconds per operation."""
        ...

    def release(self) -> None:
        """Drop the objects of the case (the row is done)."""
        ...


class LocalContender:
    """A :class:`Case` timed in this process, calibrated to batches of about ``seconds``."""

    def __init__(self, case: Case, seconds: float) -> None:
        self._case: Case | None = case
        self._timer = case.timer()
        self.number = self._calibrate(seconds)

    def _run(self, number: int) -> float:
        case = self._case
        assert case is not None, "released"
        if case.before is not None:
            case.before()
        try:
            return self._timer.timeit(number)
        finally:
            if case.after is not None:
                case.after()

    def _calibrate(self, seconds: float) -> int:
        # Grow tenfold until a batch takes a tenth of the goal, then scale to the goal.
        # The growing runs double as a warm-up (caches, lazily created objects).
        number = 1
        while True:
            elapsed = self._run(number)
            if elapsed >= seconds / 10 or number >= 10**8:
                break
            number *= 10
        return max(1, math.ceil(number * seconds / max(elapsed, 1e-9)))

    def batch(self) -> float:
        return self._run(self.number) / self.number

    def release(self) -> None:
        self._case = None
        del self._timer


class External(Protocol):
    """A column timed in another process (e.g. the original pytheus in its own venv)."""

    name: str

    def prepare(self, row: Row, settings: Settings) -> Contender | None:
        """A contender for ``row``, or None when this column does not support it."""
        ...


#: A side of a row: a case to time here, or a contender that times itself elsewhere.
Side = Callable[[], Case | Contender]


@dataclass(frozen=True)
class Baseline:
    """The reference state of a row: its own line, timed in the row's rounds."""

    label: str
    theirs: Side
    ours: Side


@dataclass(frozen=True)
class Reference:
    """The operation without either side's addition (bare Django): its own line,
    timed in the row's rounds; the row's ratio is then of the added times."""

    label: str
    side: Side


@dataclass(frozen=True)
class Row:
    """One operation of a section's table.

    ``target`` is the largest passing ratio ours/theirs; None makes the row informational.
    With a ``baseline``, ``target`` is instead the largest passing growth of ours: our
    figure over our baseline figure, the median of per-round ratios. With a
    ``reference``, ``target`` is the largest passing ratio of added times.
    ``params`` are handed to external columns, which build their own case from ``key``.
    """

    key: str
    label: str
    unit: Unit
    theirs: Side
    ours: Side
    target: float | None
    params: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""
    baseline: Baseline | None = None
    reference: Reference | None = None
    # More rounds for a row whose figures are noisy (sub-millisecond round trips).
    rounds_factor: int = 1


@dataclass
class RowResult:
    """Seconds per operation, one figure per round and side."""

    row: Row
    theirs: list[float]
    ours: list[float]
    external: dict[str, list[float]] = field(default_factory=dict)
    # The baseline's figures (theirs, ours), when the row has one.
    baseline: tuple[list[float], list[float]] | None = None
    # The reference's figures, when the row has one.
    reference: list[float] | None = None

    @property
    def ratio(self) -> float:
        """The median of the per-round ratios ours/theirs (of added times, with a reference)."""
        return statistics.median(self.round_ratios)

    def added(self, side: Literal["theirs", "ours"]) -> float | None:
        """The median of a side's per-round excess over the reference, if there is one."""
        if self.reference is None:
            return None
        return _excess(self.theirs if side == "theirs" else self.ours, self.reference)

    def growth(self, side: Literal["theirs", "ours"]) -> float | None:
        """The median of the per-round ratios of a side to its baseline, if there is one."""
        if self.baseline is None:
            return None
        base_theirs, base_ours = self.baseline
        now, base = (self.theirs, base_theirs) if side == "theirs" else (self.ours, base_ours)
        return statistics.median(n / b for n, b in zip(now, base, strict=True))

    @property
    def round_ratios(self) -> list[float]:
        if self.reference is not None:
            return [
                # A round in which theirs added nothing has no ratio worth the name: it
                # counts as the worst, never as a pass.
                (o - r) / (t - r) if t > r else math.inf
                for o, t, r in zip(self.ours, self.theirs, self.reference, strict=True)
            ]
        return [o / t for o, t in zip(self.ours, self.theirs, strict=True)]

    @property
    def ratio_spread(self) -> tuple[float, float]:
        """The quartiles (25 % and 75 %) of the per-round ratios."""
        return _quartiles(self.round_ratios)

    def growth_spread(self) -> tuple[float, float] | None:
        """The quartiles of our per-round growth against the baseline, if there is one."""
        if self.baseline is None:
            return None
        return _quartiles([n / b for n, b in zip(self.ours, self.baseline[1], strict=True)])

    @property
    def passed(self) -> bool | None:
        target = self.row.target
        if target is None:
            return None
        growth = self.growth("ours")
        return (self.ratio if growth is None else growth) <= target

    def as_dict(self) -> dict[str, Any]:
        scale = _PER_SECOND[self.row.unit]
        q1, q3 = self.ratio_spread
        baseline: dict[str, Any] | None = None
        if self.baseline is not None and self.row.baseline is not None:
            base_theirs, base_ours = self.baseline
            baseline = {
                "label": self.row.baseline.label,
                "theirs": statistics.median(base_theirs) * scale,
                "ours": statistics.median(base_ours) * scale,
                "ratio": statistics.median(
                    o / t for o, t in zip(base_ours, base_theirs, strict=True)
                ),
                "growth_theirs": self.growth("theirs"),
                "growth_ours": self.growth("ours"),
                "growth_ours_quartiles": self.growth_spread(),
                "per_round": {
                    "theirs": [v * scale for v in base_theirs],
                    "ours": [v * scale for v in base_ours],
                },
            }
        reference: dict[str, Any] | None = None
        if self.reference is not None and self.row.reference is not None:
            reference = {
                "label": self.row.reference.label,
                "value": statistics.median(self.reference) * scale,
                "added_theirs": _excess(self.theirs, self.reference) * scale,
                "added_ours": _excess(self.ours, self.reference) * scale,
                "per_round": [v * scale for v in self.reference],
            }
        return {
            "key": self.row.key,
            "label": self.row.label,
            "unit": self.row.unit,
            "theirs": statistics.median(self.theirs) * scale,
            "ours": statistics.median(self.ours) * scale,
            "external": {
                name: statistics.median(values) * scale for name, values in self.external.items()
            },
            "external_ratio": {
                name: statistics.median(e / t for e, t in zip(values, self.theirs, strict=True))
                for name, values in self.external.items()
            },
            "ratio": self.ratio,
            "ratio_q1": q1,
            "ratio_q3": q3,
            "target": self.row.target,
            "passed": self.passed,
            "rounds": len(self.ours),
            "note": self.row.note,
            "baseline": baseline,
            "reference": reference,
            "per_round": {
                "theirs": [v * scale for v in self.theirs],
                "ours": [v * scale for v in self.ours],
                **{name: [v * scale for v in values] for name, values in self.external.items()},
            },
        }


def _excess(figures: Sequence[float], reference: Sequence[float]) -> float:
    """The median of the per-round differences figure - reference."""
    return statistics.median(f - r for f, r in zip(figures, reference, strict=True))


def _quartiles(ratios: Sequence[float]) -> tuple[float, float]:
    if len(ratios) < 2:
        return ratios[0], ratios[0]
    if not all(map(math.isfinite, ratios)):
        # statistics.quantiles would weigh an infinity by zero (NaN); interpolate by hand.
        data = sorted(ratios)

        def at(p: float) -> float:
            j, frac = divmod(p * (len(data) - 1), 1)
            lo = data[int(j)]
            hi = data[min(int(j) + 1, len(data) - 1)]
            return lo if frac == 0 or lo == hi else lo + (hi - lo) * frac

        return at(0.25), at(0.75)
    q1, _, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
    return q1, q3


@dataclass(frozen=True)
class Section:
    """A table: its rows are built on demand (``build``), so sizes can follow settings.

    ``build`` returns the rows, or a context manager that yields them and holds what they
    share (a server, worker processes) until the whole section has been measured.
    """

    key: str
    title: str
    theirs_name: str
    build: Callable[[Settings], Sequence[Row] | contextlib.AbstractContextManager[Sequence[Row]]]
    ours_name: str = "pytheus (ours)"
    notes: tuple[str, ...] = ()


@dataclass
class SectionResult:
    section: Section
    rows: list[RowResult]
    external_names: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.section.key,
            "title": self.section.title,
            "theirs": self.section.theirs_name,
            "ours": self.section.ours_name,
            "external": self.external_names,
            "rows": [r.as_dict() for r in self.rows],
        }


def _rotations(n: int, rounds: int) -> Iterator[list[int]]:
    """Each side goes first in turn; every other cycle runs backwards, so that with more
    than two sides each also follows different ones (a batch can be slowed down by the
    one before it, such as a large scrape that leaves the caches cold)."""
    order = list(range(n))
    for r in range(rounds):
        k = r % n
        rotated = order[k:] + order[:k]
        yield rotated[::-1] if (r // n) % 2 else rotated


def _contender(side: Side, settings: Settings) -> Contender:
    made = side()
    return LocalContender(made, settings.batch_seconds) if isinstance(made, Case) else made


def measure_row(row: Row, settings: Settings, externals: Sequence[External]) -> RowResult:
    """Time one row: every side once per round, the first side rotating each round."""
    sides: list[Side] = [row.theirs, row.ours]
    if row.baseline is not None:
        sides += [row.baseline.theirs, row.baseline.ours]
    if row.reference is not None:
        sides.append(row.reference.side)
    contenders: list[Contender] = []
    names: list[str] = []
    figures: list[list[float]] = []
    try:
        for side in sides:
            contenders.append(_contender(side, settings))
        for ext in externals:
            contender = ext.prepare(row, settings)
            if contender is not None:
                names.append(ext.name)
                contenders.append(contender)
        figures = [[] for _ in contenders]
        for order in _rotations(len(contenders), settings.rounds * row.rounds_factor):
            for i in order:
                figures[i].append(contenders[i].batch())
    finally:
        # Every side is released even when one fails: a side may be a process that
        # would otherwise be left waiting.
        with contextlib.ExitStack() as releases:
            for c in contenders:
                releases.callback(c.release)
        # The next row starts from a clean heap whatever this one left behind.
        gc.collect()
    local = len(sides)
    baseline = (figures[2], figures[3]) if row.baseline is not None else None
    reference = figures[local - 1] if row.reference is not None else None
    external = dict(zip(names, figures[local:], strict=True))
    return RowResult(row, figures[0], figures[1], external, baseline, reference)


def run_section(
    section: Section,
    settings: Settings,
    externals: Sequence[External] = (),
    progress: Callable[[str], object] | None = None,
) -> SectionResult:
    """Measure every row of ``section``; ``progress`` is told which row is next."""
    results = []
    built = section.build(settings)
    if not isinstance(built, contextlib.AbstractContextManager):
        built = contextlib.nullcontext(built)
    with built as rows:
        for row in rows:
            if progress is not None:
                progress(f"{section.key}: {row.label}")
            results.append(measure_row(row, settings, externals))
    names = [e.name for e in externals if any(e.name in r.external for r in results)]
    return SectionResult(section, results, names)


def format_figure(seconds: float, unit: str) -> str:
    """``1201 ns`` as ``1,201 ns``; ``0.1349 s`` in ms as ``134.9 ms``."""
    value = seconds * _PER_SECOND[unit]
    if value >= 100 or unit == "ns":
        return f"{value:,.0f} {unit}"
    if value >= 10:
        return f"{value:,.1f} {unit}"
    return f"{value:,.2f} {unit}"


def _signed(seconds: float, unit: Unit) -> str:
    """An added time: ``+50.2 us``, or ``-0.31 us`` when noise made it negative."""
    return ("-" if seconds < 0 else "+") + format_figure(abs(seconds), unit)


def _ratio(value: float) -> str:
    # Two decimals, unless that would round a ratio to nothing (0.0033x, not 0.00x). A
    # ratio of added times is negative when noise put a side below the reference.
    return f"{value:.2f}x" if abs(value) >= 0.01 else f"{value:.4f}x"


def _spread(q1: float, q3: float) -> str:
    return f"{q1:.2f}-{q3:.2f}" if q1 >= 0 else f"{q1:.2f} to {q3:.2f}"


def render_table(result: SectionResult) -> str:
    """The section as a Markdown table, ready for a terminal or the README."""
    section = result.section
    header = ["operation", section.theirs_name, *result.external_names, section.ours_name]
    header += ["ratio (ours/theirs)", "target", "result", "ratio quartiles"]
    lines = [header]
    no_external = ["-"] * len(result.external_names)
    for r in result.rows:
        unit = r.row.unit
        if r.reference is not None and r.row.reference is not None:
            # The one figure both sides are compared to, in both of their columns.
            figure = format_figure(statistics.median(r.reference), unit)
            lines.append(
                [r.row.reference.label, figure, *no_external, figure, "-", "-", "info", "-"]
            )
        if r.baseline is not None and r.row.baseline is not None:
            base_theirs, base_ours = r.baseline
            base = RowResult(r.row, base_theirs, base_ours)
            q1, q3 = base.ratio_spread
            lines.append(
                [
                    r.row.baseline.label,
                    format_figure(statistics.median(base_theirs), unit),
                    *no_external,
                    format_figure(statistics.median(base_ours), unit),
                    _ratio(base.ratio),
                    "-",
                    "info",
                    f"{q1:.2f}-{q3:.2f}",
                ]
            )
        external = [
            format_figure(statistics.median(r.external[name]), unit) if name in r.external else "-"
            for name in result.external_names
        ]
        theirs = format_figure(statistics.median(r.theirs), unit)
        ours = format_figure(statistics.median(r.ours), unit)
        target = "-" if r.row.target is None else f"<= {r.row.target:g}x"
        growth_theirs, growth_ours = r.growth("theirs"), r.growth("ours")
        if growth_theirs is not None and growth_ours is not None:
            # The growth against the baseline line above, which the target is about.
            theirs += f" ({_ratio(growth_theirs)})"
            ours += f" ({_ratio(growth_ours)})"
            if r.row.target is not None:
                target = f"growth <= {r.row.target:g}x"
        added_theirs, added_ours = r.added("theirs"), r.added("ours")
        if added_theirs is not None and added_ours is not None:
            # What each side adds to the reference line above, which the ratio is about.
            theirs += f" ({_signed(added_theirs, unit)})"
            ours += f" ({_signed(added_ours, unit)})"
            if r.row.target is not None:
                target = f"added <= {r.row.target:g}x"
        verdict = {True: "PASS", False: "FAIL", None: "info"}[r.passed]
        spread = _spread(*r.ratio_spread)
        if (growth_spread := r.growth_spread()) is not None:
            spread = f"growth {growth_spread[0]:.2f}-{growth_spread[1]:.2f}"
        lines.append(
            [
                r.row.label,
                theirs,
                *external,
                ours,
                _ratio(r.ratio),
                target,
                verdict,
                spread,
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    numeric = range(1, len(header) - 1)

    def fmt(cells: list[str]) -> str:
        padded = [
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(
        "-" * (w + 1) + ":" if i in numeric else "-" * (w + 2) for i, w in enumerate(widths)
    )
    out = [f"## {section.title}", "", fmt(lines[0]), rule + "|"]
    out += [fmt(cells) for cells in lines[1:]]
    notes = [r.row.note for r in result.rows if r.row.note] + list(section.notes)
    if notes:
        out.append("")
        out += [f"- {n}" for n in notes]
    return "\n".join(out)


def eprint(*args: object) -> None:
    """Progress goes to stderr, so that stdout holds only the tables."""
    print(*args, file=sys.stderr, flush=True)
