"""The naming rules of the Prometheus data model: valid names, and the suffixes of each type.

Two kinds of rule live here, and only here:

* what a valid metric or label name is, checked where a metric is defined: every check
  raises :class:`~pytheus.exceptions.MetricDefinitionError` (for labels, its subclass
  :class:`~pytheus.exceptions.LabelDefinitionError`) with a message that names the
  offending value, the rule it breaks and how to fix it;
* how a family's name relates to the names of its samples: a counter ``hits`` has
  samples ``hits_total``, an info ``build`` has ``build_info``, a histogram ``latency``
  has ``latency_bucket``, ``latency_sum`` and ``latency_count``. Exposition, registries,
  backends and the admin dashboard all ask these functions rather than append suffixes
  of their own.

>>> family_name("hits_total", "counter"), sample_name("hits", "counter")
('hits', 'hits_total')
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pytheus.exceptions import LabelDefinitionError, MetricDefinitionError

__all__ = [
    "LABEL_NAME_RE",
    "METRIC_NAME_RE",
    "family_name",
    "implied_family",
    "sample_name",
    "series_names",
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


# --------------------------------------------------------------------------- suffixes

# The suffix that the value samples of these types add to the family name. OpenMetrics
# names the family without it; the text format 0.0.4 names the family with it.
_SAMPLE_SUFFIX = {"counter": "_total", "info": "_info"}


def family_name(name: str, type: str) -> str:
    """The family name of a metric of ``type`` called ``name``: without its samples' suffix.

    ``Counter("hits")`` and ``Counter("hits_total")`` are both the family ``hits``, whose
    samples are ``hits_total``. Every trailing suffix goes, so that ``x_total_total``
    never exposes ``x_total_total``; a name that is only the suffix stays as it is.
    """
    suffix = _SAMPLE_SUFFIX.get(type)
    if suffix is not None:
        while name.endswith(suffix) and name != suffix:
            name = name[: -len(suffix)]
    return name


def sample_name(family: str, type: str) -> str:
    """The name of a family's value samples: ``hits_total``, ``build_info``, else ``family``.

    It is also the name the text format 0.0.4 gives the family in ``# HELP`` and
    ``# TYPE``, and the name to query in PromQL.
    """
    suffix = _SAMPLE_SUFFIX.get(type)
    return family if suffix is None else family + suffix


def series_names(name: str, type: str) -> tuple[str, ...]:
    """Every sample name a family of this name and type can produce, for clash detection."""
    return {
        "counter": (name, f"{name}_total", f"{name}_created"),
        "histogram": (name, f"{name}_bucket", f"{name}_sum", f"{name}_count", f"{name}_created"),
        "summary": (name, f"{name}_sum", f"{name}_count", f"{name}_created"),
        "info": (name, f"{name}_info"),
    }.get(type, (name,))


def implied_family(sample: str) -> str | None:
    """The family a sample name implies by its suffix: ``x`` for ``x_total`` or ``x_info``.

    A collector that describes ``x_total`` produces, in OpenMetrics, a sample of the
    family ``x`` (a counter or an info), so the name ``x`` is taken as well.
    """
    for suffix in _SAMPLE_SUFFIX.values():
        if sample.endswith(suffix) and sample != suffix:
            return sample[: -len(suffix)]
    return None
