"""How the Redis backend writes definitions, series and values, and reads them back.

The layout (which key, which field) is in :mod:`pytheus.backends.redis_keys`; this module
is the format of what is stored there, both ways, so that the two cannot drift apart.
Reading checks everything it parses: a value that is not what this module writes
(another program's, a hand edit, a bug) raises :class:`BackendDataError` naming the key
and the field, which a scrape turns into a 503 with that message, never a crash deep in
exposition.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

from pytheus.definitions import HistogramState, MetricDefinition, SummaryState
from pytheus.exceptions import BackendDataError
from pytheus.samples import LabelSet

__all__ = [
    "aggregate_gauge",
    "canonical_definition",
    "decode_labelsets",
    "decode_value",
    "definition_from_json",
    "encode_change",
    "gauge_value",
    "malformed",
    "series_key",
]

_TYPES = frozenset({"counter", "gauge", "histogram", "summary", "info", "stateset"})


# --------------------------------------------------------------------------- definitions


def canonical_definition(d: MetricDefinition) -> str:
    """The definition as stored: JSON with sorted keys, label names sorted, no help text.

    Two processes define a metric the same way exactly when these strings are equal.
    """
    return json.dumps(
        {
            "type": d.type,
            "labelnames": sorted(d.labelnames),
            "unit": d.unit,
            "buckets": [repr(b) for b in d.buckets],
            "states": list(d.states),
            "multiprocess_mode": d.multiprocess_mode,
        },
        sort_keys=True,
        separators=(",", ":"),
    )


def definition_from_json(name: str, stored: str, help_text: str, where: str) -> MetricDefinition:
    """Read a stored definition back; ``where`` (the key) goes into the error message."""
    try:
        raw = json.loads(stored)
        kind = raw["type"]
        if kind not in _TYPES:
            raise ValueError(f"unknown type {kind!r}")
        labelnames = tuple(raw["labelnames"])
        buckets = tuple(float(b) for b in raw["buckets"])
        states = tuple(raw["states"])
        if not all(isinstance(x, str) for x in (*labelnames, *states, raw["unit"])):
            raise ValueError("label names, states and unit must be strings")
        if kind == "histogram" and (not buckets or buckets[-1] != math.inf):
            raise ValueError("a histogram's buckets must end with +Inf")
        return MetricDefinition(
            name=name,
            type=kind,
            help=help_text,
            labelnames=labelnames,
            unit=raw["unit"],
            buckets=buckets,
            states=states,
            multiprocess_mode=str(raw["multiprocess_mode"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise malformed(where, "\\0d", stored, exc) from None


def malformed(key: str, field: str, value: object, reason: object) -> BackendDataError:
    """The error for a stored value that pytheus cannot read."""
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return BackendDataError(
        f"Redis holds a malformed value at key {key!r}, field {field!r}: {shown} ({reason}). "
        "pytheus did not write it: another program, or another prefix of an older pytheus, "
        "writes under this prefix. Give this service a prefix of its own, or delete that "
        "field (HDEL) or key."
    )


# --------------------------------------------------------------------------- series


def series_key(labelnames: Sequence[str], labelset: LabelSet) -> str:
    """A series' field name: the JSON list of its label values, ordered by label name,
    so that every process spells a label set the same way."""
    values = labelset.values_tuple
    order = sorted(range(len(labelnames)), key=labelnames.__getitem__)
    return json.dumps([values[i] for i in order], ensure_ascii=False, separators=(",", ":"))


def decode_labelsets(
    d: MetricDefinition, keys: list[str], into: dict[str, LabelSet], where: str
) -> None:
    """Decode series fields into ``into``'s label sets, all of them in one JSON parse.

    A process's first scrape decodes every series; parsing each field on its own took
    more than twice as long as all the rest of that scrape.
    """
    names = d.labelnames
    by_sorted_name = sorted(names)
    in_order = by_sorted_name == list(names)
    try:
        decoded = json.loads(f"[{','.join(keys)}]")
    except ValueError:
        decoded = None
    if not isinstance(decoded, list) or len(decoded) != len(keys):
        bad = next((key for key in keys if not _is_json_list(key)), keys[0])
        raise malformed(where, bad, bad, "not a JSON list of label values")
    for key, values in zip(keys, decoded, strict=True):
        if not isinstance(values, list) or len(values) != len(names):
            raise malformed(where, key, key, f"not a list of {len(names)} label values")
        if in_order:
            labels = tuple(map(str, values))
        else:
            by_name = dict(zip(by_sorted_name, values, strict=True))
            labels = tuple(str(by_name[n]) for n in names)
        into[key] = LabelSet(names, labels)


def _is_json_list(text: str) -> bool:
    try:
        return isinstance(json.loads(text), list)
    except ValueError:
        return False


# --------------------------------------------------------------------------- values


def encode_change(kind: str, current: Any, previous: Any, new: bool) -> str | None:
    """What a WRITE carries for one series (None: nothing to send).

    Counters, histograms and summaries send the change since ``previous`` (Redis adds
    it); gauges, info and state sets their value. ``new`` sends a change of zero too, so
    that a series shows in scrapes as soon as it exists.
    """
    if kind == "counter":
        delta = current - (previous or 0.0)
        # HINCRBYFLOAT refuses infinities and NaN: such an increment is left out rather
        # than fail the series' every flush.
        if not math.isfinite(delta) or not (delta or new):
            return None
        return repr(delta)
    if kind in ("histogram", "summary"):
        if kind == "histogram":
            counts, total = current
            old_counts, old_total = previous or ((0.0,) * len(counts), 0.0)
            # "0" for a bucket that did not change: the WRITE leaves it as it is.
            parts = [_delta(n, o) for n, o in zip(counts, old_counts, strict=True)]
        else:
            count, total = current
            old_count, old_total = previous or (0.0, 0.0)
            parts = [_delta(count, old_count)]
        # An infinite or NaN observation makes the stored sum so, as it would in one
        # process; once it is, further changes (inf - inf) leave it as it is.
        parts.append(_delta(total, old_total) if math.isfinite(old_total) else "0")
        changed = [(i, p) for i, p in enumerate(parts, 1) if p != "0"]
        if previous is not None and not new and 2 * len(changed) < len(parts):
            # Sparse: "~<numbers>;<position>:<change>,...", positions from 1. A few
            # observations change a few buckets and the sum; the WRITE then edits those
            # numbers in the stored text and copies the others.
            return f"~{len(parts)};" + ",".join(f"{i}:{p}" for i, p in changed)
        return ",".join(parts)
    if kind == "gauge":
        return repr(float(current))
    if kind == "info":
        return json.dumps(current, sort_keys=True)
    return str(current)  # stateset


def _delta(new: float, old: float) -> str:
    return "0" if new == old else repr(new - old)


def decode_value(d: MetricDefinition, value: str, where: str, field: str) -> Any:
    """A stored series value (not a gauge's) as the snapshot its type's children return."""
    kind = d.type
    try:
        if kind == "counter":
            return (float(value), None)
        if kind == "histogram":
            parts = value.split(",")
            if len(parts) != len(d.buckets) + 1:
                raise ValueError(f"{len(parts)} numbers for {len(d.buckets)} buckets and a sum")
            numbers = [float(p) for p in parts]
            return HistogramState(tuple(numbers[:-1]), numbers[-1])
        if kind == "summary":
            count, total = value.split(",")
            return SummaryState(float(count), float(total))
        if kind == "info":
            info = json.loads(value)
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                raise ValueError("not a JSON object of strings")
            return info
        if kind == "stateset":
            if d.states and value not in d.states:
                raise ValueError(f"not one of the states {list(d.states)}")
            return value
    except ValueError as exc:
        raise malformed(where, field, value, exc) from None
    raise malformed(where, field, value, f"a {kind} has no such field")


def gauge_value(value: str, where: str, field: str) -> tuple[float, float]:
    """A gauge value as stored: ``value,time set``."""
    try:
        number, _, at = value.partition(",")
        return float(number), float(at)
    except ValueError as exc:
        raise malformed(where, field, value, exc) from None


def aggregate_gauge(
    mode: str,
    labels: LabelSet,
    values: Iterable[tuple[str, float, float]],
    *,
    retired: tuple[float, float] | None,
    live: set[str],
    process_label: str,
) -> list[tuple[LabelSet, float]]:
    """Combine one gauge series' values (process, value, time set) by ``mode``: the
    values of live processes only for the live modes, with the value folded from dead
    processes (``retired``) for the others; one series per process for "all" modes."""
    live_only = mode.startswith("live")
    values = [v for v in values if v[0] in live] if live_only else list(values)
    if mode in ("all", "liveall"):
        return [
            (labels.with_label(process_label, process.rsplit(":", 1)[0]), value)
            for process, value, _ in values
        ]
    if retired is not None and not live_only:
        values.append(("", *retired))
    if not values:
        return []
    numbers = [v for _, v, _ in values]
    if mode in ("sum", "livesum"):
        return [(labels, sum(numbers))]
    if mode in ("max", "livemax"):
        return [(labels, max(numbers))]
    if mode in ("min", "livemin"):
        return [(labels, min(numbers))]
    return [(labels, max(values, key=lambda v: v[2])[1])]  # mostrecent
