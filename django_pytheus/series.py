"""The series of a labelled metric, every label given: how django_pytheus takes one.

``Metric.labels()`` returns a child when every label is given and a partial view
otherwise; the app always gives them all, and :func:`series_of` says so to the type
checker (and raises if a label is missing, a bug of ours).

>>> from pytheus.metrics import Counter
>>> from pytheus.registry import CollectorRegistry
>>> c = Counter("hits_total", "Hits.", required_labels=["page"], registry=CollectorRegistry())
>>> series_of(c, page="/").inc()
"""

from __future__ import annotations

from typing import TypeVar

from pytheus.children import Child
from pytheus.metrics import Metric

__all__ = ["series_of"]

ChildT = TypeVar("ChildT", bound=Child)


def series_of(metric: Metric[ChildT], **labels: str) -> ChildT:
    """The series of ``metric`` with these labels, all of them given."""
    child = metric.labels(labels)
    if isinstance(child, Metric):  # labels() gives a partial view when some are missing
        raise TypeError(f"{metric!r} needs all its labels, got only {sorted(labels)}.")
    return child
