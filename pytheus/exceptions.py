"""Every error pytheus raises on purpose, in one tree.

::

    PytheusError (alias PytheusException)
    ├── MetricDefinitionError (ValueError)     bad name, labels, buckets, ... at definition
    │   ├── DuplicateMetricError               a name or series name is already registered
    │   ├── BucketException                    histogram buckets not in increasing order
    │   └── LabelDefinitionError               a bad label name or default label
    ├── LabelValidationException (ValueError)  any label mistake, at definition or when used
    │   ├── LabelDefinitionError               (the same class as above)
    │   └── LabelError                         unknown or missing labels when recording
    │       └── UnobservableMetricException    recording before every label has a value
    ├── InvalidValueError (ValueError)         e.g. a negative Counter increment
    ├── ConfigurationError (ValueError)        bad backend class or backend config
    │   ├── InvalidBackendClassException       the class cannot be imported or is no backend
    │   └── InvalidBackendConfigException      the config is unreadable or refused
    └── BackendError                           the storage behind the metrics failed
        └── BackendUnavailableError            a scrape could not reach the storage
            └── BackendDataError               ... or found in it what it cannot read

Catch ``PytheusError`` to handle all of them; the ``ValueError`` bases let code that
already catches ``ValueError`` keep working.

The names ending in ``Exception`` are those of the original pytheus 0.6.1, placed so that
an ``except`` clause written for it catches the mistakes it caught there (and, being
subclasses of ours, they are caught by ``except LabelError`` and the like too).
"""

from __future__ import annotations

__all__ = [
    "BackendDataError",
    "BackendError",
    "BackendUnavailableError",
    "BucketException",
    "ConfigurationError",
    "DuplicateMetricError",
    "InvalidBackendClassException",
    "InvalidBackendConfigException",
    "InvalidValueError",
    "LabelDefinitionError",
    "LabelError",
    "LabelValidationException",
    "MetricDefinitionError",
    "PytheusError",
    "PytheusException",
    "UnobservableMetricException",
]


class PytheusError(Exception):
    """Base class of every error raised by pytheus."""


#: pytheus 0.6.1's name for the base class.
PytheusException = PytheusError


class MetricDefinitionError(PytheusError, ValueError):
    """A metric or collector was defined with an invalid name, label, bucket or option."""


class DuplicateMetricError(MetricDefinitionError):
    """A metric's name, or one of the series names it produces, is already registered."""


class BucketException(MetricDefinitionError):
    """Histogram buckets that are not numbers in strictly increasing order."""


class LabelValidationException(PytheusError, ValueError):
    """A label mistake: a bad label name at definition, or wrong labels when recording."""


class LabelDefinitionError(MetricDefinitionError, LabelValidationException):
    """A metric was defined with an invalid label name, or a default for an unknown label."""


class LabelError(LabelValidationException):
    """Labels given when recording do not match the labels the metric was defined with."""


class UnobservableMetricException(LabelError):
    """A value was recorded on a metric (or a partially labelled view of one) before every
    required label had a value; call ``.labels(...)`` with the missing ones first."""


class InvalidValueError(PytheusError, ValueError):
    """A value cannot be recorded, such as a negative increment of a Counter."""


class ConfigurationError(PytheusError, ValueError):
    """A backend class or its configuration is invalid."""


class InvalidBackendClassException(ConfigurationError):
    """The backend class cannot be imported, or does not implement a backend protocol."""


class InvalidBackendConfigException(ConfigurationError):
    """The backend configuration cannot be read, or the backend refuses it."""


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
