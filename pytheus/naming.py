"""The naming rules of the Prometheus data model, checked where a metric is defined.

Every check raises :class:`~pytheus.exceptions.MetricDefinitionError` (for labels, its
subclass :class:`~pytheus.exceptions.LabelDefinitionError`) with a message that
names the offending value, the rule it breaks and how to fix it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pytheus.exceptions import LabelDefinitionError, MetricDefinitionError

__all__ = [
    "LABEL_NAME_RE",
    "METRIC_NAME_RE",
    "validate_label_name",
    "validate_label_names",
    "validate_metric_name",
]

METRIC_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def validate_metric_name(name: object) -> str:
    """Return ``name`` if it is a valid metric name, else raise."""
    if not isinstance(name, str):
        raise MetricDefinitionError(
            f"Metric name {name!r} must be a str, not {type(name).__name__}."
        )
    if not METRIC_NAME_RE.fullmatch(name):
        raise MetricDefinitionError(
            f"Invalid metric name {name!r}: names must match [a-zA-Z_:][a-zA-Z0-9_:]* "
            "(letters, digits, underscores and colons, not starting with a digit). "
            f"Try {_suggest(name, METRIC_NAME_RE)!r}."
        )
    if name.startswith("__"):
        raise MetricDefinitionError(
            f"Invalid metric name {name!r}: names starting with '__' are reserved "
            "for Prometheus' internal use."
        )
    return name


def validate_label_name(name: object, *, reserved: Iterable[str] = ()) -> str:
    """Return ``name`` if it is a valid label name not in ``reserved``, else raise."""
    if not isinstance(name, str):
        raise LabelDefinitionError(f"Label name {name!r} must be a str, not {type(name).__name__}.")
    if not LABEL_NAME_RE.fullmatch(name):
        raise LabelDefinitionError(
            f"Invalid label name {name!r}: label names must match [a-zA-Z_][a-zA-Z0-9_]* "
            f"(no colons, not starting with a digit). Try {_suggest(name, LABEL_NAME_RE)!r}."
        )
    if name.startswith("__"):
        raise LabelDefinitionError(
            f"Invalid label name {name!r}: label names starting with '__' are reserved "
            "for Prometheus' internal use."
        )
    if name in reserved:
        raise LabelDefinitionError(
            f"Label name {name!r} is reserved for this metric type (it is added to every "
            "sample by the exposition); choose another name."
        )
    return name


def validate_label_names(
    names: Iterable[object] | None, *, reserved: Iterable[str] = ()
) -> tuple[str, ...]:
    """Validate a sequence of label names; duplicates are an error."""
    if names is None:
        return ()
    if isinstance(names, str):
        raise LabelDefinitionError(
            f"Label names must be a list of str, got the single str {names!r}; "
            f"write [{names!r}] instead."
        )
    if not isinstance(names, Iterable):
        raise LabelDefinitionError(
            f"Label names must be a list of str, got {type(names).__name__} {names!r}."
        )
    result = tuple(validate_label_name(n, reserved=reserved) for n in names)
    seen: set[str] = set()
    for n in result:
        if n in seen:
            raise LabelDefinitionError(f"Label name {n!r} is given twice.")
        seen.add(n)
    return result


def _suggest(name: str, pattern: re.Pattern[str]) -> str:
    fixed = re.sub(r"[^a-zA-Z0-9_:]" if pattern is METRIC_NAME_RE else r"\W", "_", name)
    fixed = fixed.lstrip("_") or "metric"
    if fixed[0].isdigit():
        fixed = "_" + fixed
    return fixed
