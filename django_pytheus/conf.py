"""The ``PYTHEUS`` setting: one dict, read once into a typed, validated object.

Every key is optional::

    PYTHEUS = {
        # Where scrapes read values from: a dotted path or a class. Not set: the
        # PYTHEUS_BACKEND_CLASS environment variable, else the in-memory backend.
        "BACKEND": "pytheus.backends.redis.MultiProcessRedisBackend",
        # Options of that backend; {"CACHE": "default", "db": 1} takes the connection
        # settings of that django-redis cache (host, password, TLS), with a db of its
        # own: cache.clear() empties the cache's db. Other keys ("prefix", timeouts)
        # still apply; the Redis backend's prefix defaults to "pytheus:<project>".
        "BACKEND_CONFIG": {"url": "redis://127.0.0.1:6379/1"},
        "NAMESPACE": "django",  # prefix of every metric name ("" for none)
        "VIEW_LABEL": "route",  # or "view_name"
        "EXCLUDE_VIEWS": ["django_pytheus:metrics"],  # view names or view labels
        # Whether the admin metrics dashboard's own pages and polls count as requests.
        "RECORD_DASHBOARD": False,
        "LATENCY_BUCKETS": [...],  # request durations, seconds
        "DB_LATENCY_BUCKETS": [...],  # query durations, seconds
        "CACHE_LATENCY_BUCKETS": [...],  # cache operation durations, seconds
        "SIZE_BUCKETS": [...],  # request and response bodies, bytes
        "QUERY_COUNT_BUCKETS": [...],  # queries per request
        "DB_METRICS": True,
        "CACHE_METRICS": True,
        # Inserts, updates and deletes by model (django_pytheus.orm): False, True (every
        # model), ["shop.Order", ...], or {"shop.Order": "order"} to choose the label.
        "MODEL_METRICS": False,
        # Applied and unapplied migrations per database, read at scrapes (django_pytheus.orm).
        "MIGRATION_METRICS": False,
        # "django_prometheus": django-prometheus 2.5's metrics as well (django_pytheus.compat).
        "COMPAT": None,
        # Series per metric, for every metric without max_series= of its own (pytheus'
        # cardinality guard, set with set_default_max_series() when the app is set up);
        # None removes the limit.
        "MAX_SERIES": 10_000,
        # Counter names in the text format: "total" (name_total, the convention) or
        # "as_given" (exactly as defined, as pytheus 0.6.1 exposed them). None: the
        # PYTHEUS_COUNTER_NAMES environment variable, else "total".
        "COUNTER_NAMES": None,
        # Celery task and worker metrics (pytheus.contrib.celery), in every process
        # that sets the app up: web workers (tasks published) and Celery workers.
        "CELERY": False,
        # The families of prometheus_client's global registry in /metrics too
        # (pytheus.bridges.prometheus_client), for libraries instrumented with it.
        "PROMETHEUS_CLIENT": False,
        # Seconds a process waits at exit for its last metrics to reach the backend
        # (pytheus.backends.set_exit_timeout); None: PYTHEUS_EXIT_TIMEOUT, else 3.
        "EXIT_TIMEOUT": None,
        "AUTH": {  # who may read /metrics; see django_pytheus.access
            "TOKENS": ["..."],
            "BASIC": {"prometheus": "..."},
            "NETWORKS": ["10.0.0.0/8"],
            # Whose X-Forwarded-For to believe: your proxies' own addresses only. The
            # left-most address wins when every hop is trusted, so a CIDR that also holds
            # ordinary clients lets any of them claim any address in NETWORKS.
            "TRUSTED_PROXIES": ["10.0.0.2/32"],
            "STAFF": False,
            "CALLABLE": "myproject.metrics.can_scrape",
        },
    }

:func:`get_settings` validates the dict once and caches the result; the cache is
cleared when a test changes ``PYTHEUS``, ``CACHES`` or django-prometheus's settings
(``setting_changed``). Every mistake raises
:class:`~django.core.exceptions.ImproperlyConfigured` naming the key.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import ipaddress
import itertools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

from pytheus.exposition import COUNTER_NAMES

__all__ = [
    "COMPAT_MODES",
    "DEFAULTS",
    "AuthSettings",
    "CompatSettings",
    "PytheusSettings",
    "get_settings",
    "parse_settings",
    "secret_digest",
    "settings_changed",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: The name under which the metrics view is included (``django_pytheus.urls``).
METRICS_VIEW_NAME = "django_pytheus:metrics"

DEFAULTS: dict[str, Any] = {
    "BACKEND": None,
    "BACKEND_CONFIG": None,
    "NAMESPACE": "django",
    "VIEW_LABEL": "route",
    "EXCLUDE_VIEWS": (METRICS_VIEW_NAME,),
    "RECORD_DASHBOARD": False,
    # Web requests: 5 ms to 30 s.
    "LATENCY_BUCKETS": (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    # Queries: half a millisecond (a primary-key lookup on a local database) to 5 s.
    "DB_LATENCY_BUCKETS": (
        0.0005,
        0.001,
        0.0025,
        0.005,
        0.01,
        0.025,
        0.05,
        0.1,
        0.25,
        0.5,
        1.0,
        2.5,
        5.0,
    ),
    # Cache operations: 0.1 ms (locmem) to 1 s.
    "CACHE_LATENCY_BUCKETS": (
        0.0001,
        0.00025,
        0.0005,
        0.001,
        0.0025,
        0.005,
        0.01,
        0.025,
        0.05,
        0.1,
        0.25,
        1.0,
    ),
    # Bodies: 256 B to 16 MiB, by powers of four.
    "SIZE_BUCKETS": (256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216),
    # Queries per request: N+1 views land in the upper buckets.
    "QUERY_COUNT_BUCKETS": (0, 1, 2, 3, 5, 10, 20, 50, 100, 200, 500),
    "DB_METRICS": True,
    "CACHE_METRICS": True,
    # The core's default: a label with unbounded values stops growing there.
    "MAX_SERIES": 10_000,
    "COUNTER_NAMES": None,
    "CELERY": False,
    "PROMETHEUS_CLIENT": False,
    "EXIT_TIMEOUT": None,
    "AUTH": None,
    "MODEL_METRICS": False,
    "MIGRATION_METRICS": False,
    "COMPAT": None,
}

#: The values of ``PYTHEUS["COMPAT"]``.
COMPAT_MODES = ("django_prometheus",)
#: django-prometheus's own settings, which keep their meaning under ``COMPAT``.
COMPAT_SETTINGS = ("PROMETHEUS_METRIC_NAMESPACE", "PROMETHEUS_LATENCY_BUCKETS")
#: django-prometheus 2.5's default latency buckets (its PROMETHEUS_LATENCY_BUCKETS).
COMPAT_LATENCY_BUCKETS = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 25.0, 50.0, 75.0,
    math.inf,
)  # fmt: skip

AUTH_KEYS = ("TOKENS", "BASIC", "NETWORKS", "TRUSTED_PROXIES", "STAFF", "CALLABLE")
VIEW_LABELS = ("route", "view_name")
_NAMESPACE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def secret_digest(secret: str) -> bytes:
    """The SHA-256 digest a secret (token, user, password) is kept and compared as.

    Compared as digests, ``hmac.compare_digest`` takes the same time whatever the
    length of the guess, so not even the length leaks.
    """
    return hashlib.sha256(secret.encode()).digest()


@dataclass(frozen=True)
class AuthSettings:
    """Who may read ``/metrics`` (see :func:`django_pytheus.access.check_access`).

    ``networks`` restrict where requests may come from; ``tokens``, ``basic``, ``staff``
    and ``check`` (the CALLABLE) are ways to authenticate, any one of which suffices. Secrets are
    kept only as SHA-256 digests.
    """

    token_digests: tuple[bytes, ...] = ()
    basic_digests: tuple[tuple[bytes, bytes], ...] = ()
    networks: tuple[IPNetwork, ...] = ()
    trusted_proxies: tuple[IPNetwork, ...] = ()
    staff: bool = False
    check: Callable[[Any], bool] | str | None = None

    @property
    def enabled(self) -> bool:
        """Whether any access control is configured (else /metrics is public)."""
        return bool(self.networks) or self.needs_credentials

    @property
    def needs_credentials(self) -> bool:
        """Whether a request must authenticate (not only come from an allowed network)."""
        return bool(
            self.token_digests or self.basic_digests or self.staff or self.check is not None
        )


@dataclass(frozen=True)
class CompatSettings:
    """``PYTHEUS["COMPAT"]``: which peer's metric names to expose as well, and how.

    ``namespace`` and ``latency_buckets`` come from django-prometheus's own settings
    (``PROMETHEUS_METRIC_NAMESPACE``, ``PROMETHEUS_LATENCY_BUCKETS``) when they are set,
    so that a site keeps its series names and bucket layout when it switches.
    """

    mode: str
    namespace: str = ""
    latency_buckets: tuple[float, ...] = COMPAT_LATENCY_BUCKETS

    def metric_name(self, name: str) -> str:
        """``name`` (``django_...``) with ``PROMETHEUS_METRIC_NAMESPACE`` in front, if set."""
        return f"{self.namespace}_{name}" if self.namespace else name


@dataclass(frozen=True)
class PytheusSettings:
    """The validated ``PYTHEUS`` setting; see the module docstring for each key."""

    backend: str | type | None
    backend_config: Mapping[str, Any] | None
    backend_cache_alias: str | None
    namespace: str
    view_label: str
    exclude_views: frozenset[str]
    latency_buckets: tuple[float, ...]
    db_latency_buckets: tuple[float, ...]
    cache_latency_buckets: tuple[float, ...]
    size_buckets: tuple[float, ...]
    query_count_buckets: tuple[float, ...]
    db_metrics: bool
    cache_metrics: bool
    auth: AuthSettings = field(default_factory=AuthSettings)
    max_series: int | None = 10_000
    counter_names: str | None = None
    celery: bool = False
    prometheus_client: bool = False
    exit_timeout: float | None = None
    #: None (off), "all", or {"app_label.modelname": label} (lower-case model labels).
    model_metrics: str | Mapping[str, str] | None = None
    migration_metrics: bool = False
    compat: CompatSettings | None = None
    record_dashboard: bool = False

    def metric_name(self, name: str) -> str:
        """``name`` with the namespace in front: ``http_requests`` -> ``django_http_requests``."""
        return f"{self.namespace}_{name}" if self.namespace else name


# --------------------------------------------------------------------------- validation


def _unknown_key(where: str, key: object, known: Sequence[str]) -> ImproperlyConfigured:
    # Keys are upper case; a lower-case typo should still find its match.
    close = difflib.get_close_matches(key.upper(), known, n=1) if isinstance(key, str) else []
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return ImproperlyConfigured(
        f"{where}[{key!r}] is not a setting of django_pytheus.{hint} "
        f"Valid keys: {', '.join(known)}."
    )


def _type_error(where: str, expected: str, value: object) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"{where} must be {expected}, got {value!r}.")


def _bool(where: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise _type_error(where, "True or False", value)
    return value


def _strings(where: str, value: object, *, allow_empty_list: bool = True) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple | set | frozenset):
        raise _type_error(where, "a list of strings", value)
    items = tuple(value)
    for item in items:
        if not isinstance(item, str) or not item:
            raise _type_error(where, "a list of non-empty strings", value)
    if not items and not allow_empty_list:
        raise _type_error(where, "a non-empty list of strings", value)
    return items


def _buckets(where: str, value: object) -> tuple[float, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise _type_error(where, "a list of numbers in increasing order", value)
    if not value:
        raise _type_error(where, "a non-empty list of numbers in increasing order", value)
    bounds: list[float] = []
    for b in value:
        if isinstance(b, bool) or not isinstance(b, int | float) or math.isnan(b):
            raise ImproperlyConfigured(f"{where} must contain only numbers; {b!r} is not one.")
        bounds.append(float(b))
    for lower, upper in itertools.pairwise(bounds):
        if not lower < upper:
            raise ImproperlyConfigured(
                f"{where} must be in increasing order without repeats: {lower:g} comes "
                f"before {upper:g} in {list(value)!r}. Use sorted(set(...))."
            )
    return tuple(bounds)


def _max_series(where: str, value: object) -> int | None:
    if value is not None and (type(value) is not int or value < 1):
        raise _type_error(
            where, "a whole number >= 1 (series per metric), or None for no limit", value
        )
    return value


def _exit_timeout(where: str, value: object) -> float | None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0
    ):
        raise _type_error(where, "a number of seconds >= 0, or None", value)
    return None if value is None else float(value)


def _optional_package(where: str, value: object, package: str, install: str) -> bool:
    """A switch that needs an optional package: refused at settings load without it."""
    on = _bool(where, value)
    if on and importlib.util.find_spec(package) is None:
        raise ImproperlyConfigured(
            f"{where} is True, but {package} is not installed: {install}, or set it to False."
        )
    return on


def _networks(where: str, value: object) -> tuple[IPNetwork, ...]:
    nets = []
    for item in _strings(where, value):
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"{where} contains {item!r}, which is not an IP network: {exc}. Write "
                "addresses or CIDR networks such as '10.0.0.0/8' or '::1'."
            ) from None
    return tuple(nets)


def _parse_auth(value: object) -> AuthSettings:
    where = "PYTHEUS['AUTH']"
    if value is None:
        return AuthSettings()
    if not isinstance(value, Mapping):
        raise _type_error(where, "a dict", value)
    for key in value:
        if key not in AUTH_KEYS:
            raise _unknown_key(where, key, AUTH_KEYS)
    tokens = _strings(f"{where}['TOKENS']", value.get("TOKENS", ()))
    for token in tokens:
        if token != token.strip() or " " in token:
            raise ImproperlyConfigured(
                f"{where}['TOKENS'] contains a token with spaces, which no client can send "
                "in an Authorization: Bearer header; remove the spaces."
            )
    basic = value.get("BASIC", {})
    if not isinstance(basic, Mapping):
        raise _type_error(f"{where}['BASIC']", "a dict of {username: password}", basic)
    basic_digests = []
    for user, password in basic.items():
        if not isinstance(user, str) or not user or ":" in user:
            raise ImproperlyConfigured(
                f"{where}['BASIC'] has the username {user!r}; usernames must be non-empty "
                "strings without ':' (HTTP basic auth separates them from the password by it)."
            )
        if not isinstance(password, str) or not password:
            raise ImproperlyConfigured(
                f"{where}['BASIC'][{user!r}] must be a non-empty password string."
            )
        basic_digests.append((secret_digest(user), secret_digest(password)))
    networks = _networks(f"{where}['NETWORKS']", value.get("NETWORKS", ()))
    proxies = _networks(f"{where}['TRUSTED_PROXIES']", value.get("TRUSTED_PROXIES", ()))
    if proxies and not networks:
        raise ImproperlyConfigured(
            f"{where}['TRUSTED_PROXIES'] only says whose X-Forwarded-For header to believe "
            f"when checking {where}['NETWORKS'], which is not set; set NETWORKS or remove "
            "TRUSTED_PROXIES."
        )
    check = value.get("CALLABLE")
    if check is not None and not (isinstance(check, str) and "." in check) and not callable(check):
        raise _type_error(f"{where}['CALLABLE']", "a function or the dotted path of one", check)
    return AuthSettings(
        token_digests=tuple(secret_digest(t) for t in tokens),
        basic_digests=tuple(basic_digests),
        networks=networks,
        trusted_proxies=proxies,
        staff=_bool(f"{where}['STAFF']", value.get("STAFF", False)),
        check=check,
    )


_MODEL_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*")


def _model_metrics(value: object) -> str | Mapping[str, str] | None:
    where = "PYTHEUS['MODEL_METRICS']"
    if value is False or value is None:
        return None
    if value is True:
        return "all"
    expected = (
        "True (every model), False, a list of model labels such as ['shop.Order'], or a "
        "dict such as {'shop.Order': 'order'} (model label: value of the model label)"
    )
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, list | tuple | set | frozenset):
        pairs = [(item, None) for item in value]
    else:
        raise _type_error(where, expected, value)
    labels: dict[str, str] = {}
    for model, label in pairs:
        if not isinstance(model, str) or not _MODEL_LABEL.fullmatch(model):
            raise ImproperlyConfigured(
                f"{where} names {model!r}, which is not a model label: write "
                "'app_label.ModelName', as in the model's Meta.label (e.g. 'auth.User')."
            )
        if label is not None and (not isinstance(label, str) or not label):
            raise ImproperlyConfigured(
                f"{where}[{model!r}] must be the value of the 'model' label, a non-empty "
                f"string, got {label!r}."
            )
        labels[model.lower()] = label if label is not None else model.lower()
    return labels


def _compat(value: object, legacy: Mapping[str, Any]) -> CompatSettings | None:
    where = "PYTHEUS['COMPAT']"
    if value is None:
        return None
    if value not in COMPAT_MODES:
        close = (
            difflib.get_close_matches(value.lower().replace("-", "_"), COMPAT_MODES, n=1)
            if isinstance(value, str)
            else []
        )
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ImproperlyConfigured(
            f"{where} is {value!r}, which is not a compatibility mode.{hint} Valid "
            f"values: {', '.join(map(repr, COMPAT_MODES))} or None."
        )
    namespace = legacy.get("PROMETHEUS_METRIC_NAMESPACE", "")
    if not isinstance(namespace, str) or (namespace and not _NAMESPACE.fullmatch(namespace)):
        raise _type_error(
            "PROMETHEUS_METRIC_NAMESPACE (read because PYTHEUS['COMPAT'] is set)",
            "a metric name prefix of letters, digits and underscores (or '')",
            namespace,
        )
    buckets = legacy.get("PROMETHEUS_LATENCY_BUCKETS")
    return CompatSettings(
        mode=value,
        namespace=namespace,
        latency_buckets=COMPAT_LATENCY_BUCKETS
        if buckets is None
        else _buckets(
            "PROMETHEUS_LATENCY_BUCKETS (read because PYTHEUS['COMPAT'] is set)", buckets
        ),
    )


def parse_settings(
    raw: object,
    caches: Mapping[str, Any] | None = None,
    legacy: Mapping[str, Any] | None = None,
) -> PytheusSettings:
    """Validate a ``PYTHEUS`` dict (``None`` means all defaults) into settings.

    ``caches`` is the ``CACHES`` setting, used to check ``BACKEND_CONFIG['CACHE']``;
    ``legacy`` holds django-prometheus's settings (:data:`COMPAT_SETTINGS`) that are set,
    read only when ``COMPAT`` is.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ImproperlyConfigured(f"PYTHEUS must be a dict, got {type(raw).__name__}.")
    for key in raw:
        if key not in DEFAULTS:
            raise _unknown_key("PYTHEUS", key, tuple(DEFAULTS))
    values = {**DEFAULTS, **raw}

    backend = values["BACKEND"]
    if backend is not None and not isinstance(backend, str | type):
        raise _type_error("PYTHEUS['BACKEND']", "a dotted path or a backend class", backend)
    if isinstance(backend, str) and "." not in backend:
        raise _type_error(
            "PYTHEUS['BACKEND']",
            "a dotted path such as 'pytheus.backends.redis.MultiProcessRedisBackend'",
            backend,
        )
    config = values["BACKEND_CONFIG"]
    alias = None
    if config is not None:
        if not isinstance(config, Mapping):
            raise _type_error("PYTHEUS['BACKEND_CONFIG']", "a dict", config)
        config = dict(config)
        if "CACHE" in config:
            alias = config.pop("CACHE")
            if not isinstance(alias, str):
                raise _type_error(
                    "PYTHEUS['BACKEND_CONFIG']['CACHE']", "the alias of a cache", alias
                )
            if caches is not None and alias not in caches:
                raise ImproperlyConfigured(
                    f"PYTHEUS['BACKEND_CONFIG']['CACHE'] is {alias!r}, which is not in "
                    f"CACHES (aliases: {', '.join(map(repr, caches)) or 'none'})."
                )
            clash = sorted(
                {"client", "connection_pool", "url", "host", "port", "username", "password"}
                & set(config)
            )
            if clash:
                raise ImproperlyConfigured(
                    f"PYTHEUS['BACKEND_CONFIG'] has both 'CACHE' and {clash[0]!r}; the "
                    "connection comes from the cache, so remove one of them (give 'db' to "
                    "keep metrics in another database than the cache's)."
                )

    namespace = values["NAMESPACE"]
    if not isinstance(namespace, str) or (namespace and not _NAMESPACE.fullmatch(namespace)):
        raise _type_error(
            "PYTHEUS['NAMESPACE']",
            "a metric name prefix of letters, digits and underscores (or '')",
            namespace,
        )
    view_label = values["VIEW_LABEL"]
    if view_label not in VIEW_LABELS:
        raise _type_error("PYTHEUS['VIEW_LABEL']", "'route' or 'view_name'", view_label)
    counter_names = values["COUNTER_NAMES"]
    if counter_names is not None and counter_names not in COUNTER_NAMES:
        raise _type_error("PYTHEUS['COUNTER_NAMES']", "'total', 'as_given' or None", counter_names)

    return PytheusSettings(
        backend=backend,
        backend_config=config,
        backend_cache_alias=alias,
        namespace=namespace,
        view_label=view_label,
        exclude_views=frozenset(_strings("PYTHEUS['EXCLUDE_VIEWS']", values["EXCLUDE_VIEWS"])),
        latency_buckets=_buckets("PYTHEUS['LATENCY_BUCKETS']", values["LATENCY_BUCKETS"]),
        db_latency_buckets=_buckets("PYTHEUS['DB_LATENCY_BUCKETS']", values["DB_LATENCY_BUCKETS"]),
        cache_latency_buckets=_buckets(
            "PYTHEUS['CACHE_LATENCY_BUCKETS']", values["CACHE_LATENCY_BUCKETS"]
        ),
        size_buckets=_buckets("PYTHEUS['SIZE_BUCKETS']", values["SIZE_BUCKETS"]),
        query_count_buckets=_buckets(
            "PYTHEUS['QUERY_COUNT_BUCKETS']", values["QUERY_COUNT_BUCKETS"]
        ),
        db_metrics=_bool("PYTHEUS['DB_METRICS']", values["DB_METRICS"]),
        cache_metrics=_bool("PYTHEUS['CACHE_METRICS']", values["CACHE_METRICS"]),
        auth=_parse_auth(values["AUTH"]),
        max_series=_max_series("PYTHEUS['MAX_SERIES']", values["MAX_SERIES"]),
        counter_names=counter_names,
        celery=_optional_package(
            "PYTHEUS['CELERY']",
            values["CELERY"],
            "celery",
            "pip install celery (the 'celery' extra of pytheus)",
        ),
        prometheus_client=_optional_package(
            "PYTHEUS['PROMETHEUS_CLIENT']",
            values["PROMETHEUS_CLIENT"],
            "prometheus_client",
            "pip install prometheus-client",
        ),
        exit_timeout=_exit_timeout("PYTHEUS['EXIT_TIMEOUT']", values["EXIT_TIMEOUT"]),
        model_metrics=_model_metrics(values["MODEL_METRICS"]),
        migration_metrics=_bool("PYTHEUS['MIGRATION_METRICS']", values["MIGRATION_METRICS"]),
        compat=_compat(values["COMPAT"], legacy or {}),
        record_dashboard=_bool("PYTHEUS['RECORD_DASHBOARD']", values["RECORD_DASHBOARD"]),
    )


_cached: PytheusSettings | None = None


def get_settings() -> PytheusSettings:
    """The validated ``PYTHEUS`` setting, parsed on first use and then cached.

    Raises :class:`~django.core.exceptions.ImproperlyConfigured` naming the wrong key.
    """
    global _cached
    result = _cached
    if result is None:
        result = _cached = parse_settings(
            getattr(django_settings, "PYTHEUS", None),
            getattr(django_settings, "CACHES", None),
            {
                k: getattr(django_settings, k)
                for k in COMPAT_SETTINGS
                if hasattr(django_settings, k)
            },
        )
    return result


def settings_changed(*, setting: str, **kwargs: Any) -> None:
    """``setting_changed`` receiver (connected in ``ready()``): parse ``PYTHEUS`` anew
    when a test changes it or ``CACHES``."""
    global _cached
    if setting in ("PYTHEUS", "CACHES", *COMPAT_SETTINGS):
        _cached = None
