"""pytheus 0.6.1's Redis backend options, mapped onto ours.

pytheus 0.6.1 handed its whole backend config to ``redis.Redis`` after taking out two keys
of its own. :func:`map_pytheus_options` accepts the same configs:

* ``expire_key_time`` (seconds a value stays in Redis without being written) becomes
  ``series_ttl``, which deletes a series nobody wrote for that long;
* ``key_prefix`` (deprecated there too) becomes ``prefix``, with a ``DeprecationWarning``;
* any other key that ``redis.Redis()`` accepts (``ssl``, ``ssl_ca_certs``,
  ``client_name``, ``socket_keepalive``, ...) goes into ``connection_options``.

Keys that are neither ours nor ``redis.Redis``'s are left for the backend to refuse,
with its "did you mean" hint.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Collection, Mapping
from typing import Any

import redis

from pytheus.exceptions import InvalidBackendConfigException

__all__ = ["map_pytheus_options"]

_RENAMED = {"expire_key_time": "series_ttl", "key_prefix": "prefix"}


@functools.cache
def _redis_arguments() -> frozenset[str]:
    return frozenset(inspect.signature(redis.Redis.__init__).parameters) - {"self"}


def map_pytheus_options(config: Mapping[str, Any], ours: Collection[str]) -> dict[str, Any]:
    """Return ``config`` with pytheus 0.6.1's options turned into ours (``ours`` names
    every option the backend takes)."""
    if not any(k in _RENAMED or k not in ours for k in config):
        return dict(config)
    mapped: dict[str, Any] = {}
    passed: dict[str, Any] = {}
    for key, value in config.items():
        if key in _RENAMED:
            new = _RENAMED[key]
            if new in config:
                raise InvalidBackendConfigException(
                    f"Give {new!r} or pytheus 0.6.1's {key!r}, not both."
                )
            if key == "key_prefix":
                warnings.warn(
                    "The Redis backend option 'key_prefix' is deprecated (as in pytheus "
                    "0.6.1); use 'prefix'.",
                    DeprecationWarning,
                    stacklevel=6,  # the caller of load_backend()
                )
            mapped[new] = value
        elif key not in ours and key in _redis_arguments():
            passed[key] = value
        else:
            mapped[key] = value
    if passed:
        given = mapped.get("connection_options") or {}
        if not isinstance(given, Mapping):
            raise InvalidBackendConfigException(
                f"connection_options must be a dict of redis.Redis arguments, got {given!r}."
            )
        mapped["connection_options"] = {**passed, **given}
    return mapped
