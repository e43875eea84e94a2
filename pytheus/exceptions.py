"""Every error pytheus raises on purpose, in one tree.

::

    PytheusError
    ├── MetricDefinitionError (ValueError)   bad name, labels, buckets, ... at definition
    │   └── DuplicateMetricError             a name or series name is already registered
    ├── LabelError (ValueError)              unknown or missing labels when recording
    ├── InvalidValueError (ValueError)       e.g. a negative Counter increment
    ├── ConfigurationError (ValueError)      bad backend class or backend config
    └── BackendError                         the storage behind the metrics failed
        └── BackendUnavailableError          a scrape could not reach the storage
            └── BackendDataError             ... or found in it what it cannot read

Catch ``PytheusError`` to handle all of them; the ``ValueError`` bases let code that
already catches ``ValueError`` keep working.
"""

from __future__ import annotations

__all__ = [
    "BackendDataError",
    "BackendError",
    "BackendUnavailableError",
    "ConfigurationError",
    "DuplicateMetricError",
    "InvalidValueError",
    "LabelError",
    "MetricDefinitionError",
    "PytheusError",
]


class PytheusError(Exception):
    """Base class of every error raised by pytheus."""


class MetricDefinitionError(PytheusError, ValueError):
    """A metric or collector was defined with an invalid name, label, bucket or option."""


class DuplicateMetricError(MetricDefinitionError):
    """A metric's name, or one of the series names it produces, is already registered."""


class LabelError(PytheusError, ValueError):
    """Labels given when recording do not match the labels the metric was defined with."""


class InvalidValueError(PytheusError, ValueError):
    """A value cannot be recorded, such as a negative increment of a Counter."""


class ConfigurationError(PytheusError, ValueError):
    """A backend class or its configuration is invalid."""


class BackendError(PytheusError):
    """The storage behind the metrics failed."""


class BackendUnavailableError(BackendError):
    """A scrape could not read the metrics from the backend (for example Redis is down).

    Web views turn this into ``503 Service Unavailable``: a scrape that fails is better
    than one that reports made-up zeros.
    """


class BackendDataError(BackendUnavailableError):
    """The storage holds a value pytheus did not write and cannot read (malformed, or
    written by another program under the same key prefix).

    A scrape cannot be answered truthfully, so it fails as when the storage is down
    (web views answer 503), with a message that names the key to look at.
    """
