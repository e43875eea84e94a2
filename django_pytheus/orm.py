"""Model operations and migration state: ``MODEL_METRICS`` and ``MIGRATION_METRICS``.

Model operations (``PYTHEUS["MODEL_METRICS"]``), counted through Django's ``post_save``
and ``post_delete`` signals, so no model needs a mixin:

========================================== ========= =======================================
metric                                     type      labels
========================================== ========= =======================================
django_model_inserts_total                 counter   model (saves that created a row)
django_model_updates_total                 counter   model (saves of an existing row)
django_model_deletes_total                 counter   model (rows deleted, cascades and
                                                     ``QuerySet.delete()`` included)
========================================== ========= =======================================

``True`` counts every model, a list such as ``["shop.Order"]`` only those, and a dict
``{"shop.Order": "order"}`` chooses the ``model`` label (by default the model's label in
lower case, ``shop.order``). The series of every chosen model exist from the start, at
zero. ``QuerySet.update()`` and ``bulk_create()`` send no signals and are not counted.
A ``post_delete`` receiver makes Django load the rows a ``QuerySet.delete()`` removes,
to send the signal for each: choose the models you need rather than ``True`` on tables
that are bulk-deleted.

Migration state (``PYTHEUS["MIGRATION_METRICS"]``), per database alias:

========================================== ========= =======================================
django_db_migrations_applied               gauge     alias (migrations recorded as applied)
django_db_migrations_unapplied             gauge     alias (migrations the code has and the
                                                     database lacks: alert when above 0)
========================================== ========= =======================================

Nothing is read at start-up (no database work in ``ready()``): the metrics view reads the
state before it answers, at the first scrape of each process and then at most once a
:data:`MIGRATION_REFRESH_SECONDS`, so a ``migrate`` run after the server started shows
within a minute. Reading it costs two small queries and, the first time, loading the
migration files. A database that cannot be read keeps the last values (none at first)
and is tried again at the next refresh; the scrape is never refused for it.
"""

from __future__ import annotations

import difflib
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db.models.signals import post_delete, post_save

from django_pytheus.conf import PytheusSettings
from django_pytheus.series import series_of
from pytheus.metrics import Counter, CounterChild, Gauge
from pytheus.registry import CollectorRegistry

__all__ = [
    "MIGRATION_REFRESH_SECONDS",
    "OrmMetrics",
    "activate",
    "chosen_models",
    "install",
    "migration_counts",
    "uninstall",
]

logger = logging.getLogger("django_pytheus")

#: How often a process reads the migration state again, at most.
MIGRATION_REFRESH_SECONDS = 60.0
_OPERATIONS = ("inserts", "updates", "deletes")


class _ModelSeries(NamedTuple):
    """The counters one model's operations go to (ours, and django-prometheus's if apart)."""

    inserts: tuple[CounterChild, ...]
    updates: tuple[CounterChild, ...]
    deletes: tuple[CounterChild, ...]


def chosen_models(settings: PytheusSettings) -> dict[type[Any], str]:
    """The models ``MODEL_METRICS`` chooses, each with its ``model`` label.

    Raises :class:`~django.core.exceptions.ImproperlyConfigured` for a label that names
    no installed model.
    """
    chosen = settings.model_metrics
    if chosen is None:
        return {}
    models = {m._meta.label_lower: m for m in apps.get_models()}
    if chosen == "all":
        return {model: label for label, model in models.items()}
    assert isinstance(chosen, Mapping)
    out = {}
    for label, metric_label in chosen.items():
        model = models.get(label)
        if model is None:
            close = difflib.get_close_matches(label, models, n=1)
            hint = f" Did you mean {models[close[0]]._meta.label!r}?" if close else ""
            raise ImproperlyConfigured(
                f"PYTHEUS['MODEL_METRICS'] names {label!r}, which is not an installed model."
                f"{hint} Write the model's 'app_label.ModelName' (its Meta.label)."
            )
        out[model] = metric_label
    return out


class OrmMetrics:
    """The model and migration metrics that the settings ask for, in ``registry``."""

    def __init__(
        self, settings: PytheusSettings, registry: CollectorRegistry, native_names: set[str]
    ) -> None:
        self.registry = registry
        self._metrics: list[Counter | Gauge] = []
        compat = settings.compat
        self._models: dict[type[Any], _ModelSeries] = {}
        self._families: list[list[Counter]] = []
        if settings.model_metrics is not None:
            # Named with _total, which they keep whatever PYTHEUS['COUNTER_NAMES'] says.
            names = [settings.metric_name(f"model_{op}_total") for op in _OPERATIONS]
            families = [[self._counter(n, op)] for n, op in zip(names, _OPERATIONS, strict=True)]
            if compat is not None:
                for family, op in zip(families, _OPERATIONS, strict=True):
                    legacy = compat.metric_name(f"django_model_{op}_total")
                    if legacy not in (*names, *native_names):
                        family.append(self._counter(legacy, op))
            self._families = families
        # (gauge, its label name): ours say "alias", django-prometheus's "connection".
        self.applied: list[tuple[Gauge, str]] = []
        self.unapplied: list[tuple[Gauge, str]] = []
        if settings.migration_metrics:
            self.applied.append(
                self._gauge(
                    settings.metric_name("db_migrations_applied"), "alias", "recorded as applied"
                )
            )
            self.unapplied.append(
                self._gauge(
                    settings.metric_name("db_migrations_unapplied"),
                    "alias",
                    "in the code and not applied to the database",
                )
            )
            if compat is not None:
                self.applied.append(
                    self._gauge(
                        compat.metric_name("django_migrations_applied_total"),
                        "connection",
                        "recorded as applied",
                    )
                )
                self.unapplied.append(
                    self._gauge(
                        compat.metric_name("django_migrations_unapplied_total"),
                        "connection",
                        "in the code and not applied to the database",
                    )
                )
        self._refresh_lock = threading.Lock()
        self._next_refresh = 0.0

    def _counter(self, name: str, operation: str) -> Counter:
        what = {"inserts": "Rows inserted", "updates": "Rows updated", "deletes": "Rows deleted"}
        metric = Counter(
            name,
            f"{what[operation]} through the ORM, by model (post_save/post_delete signals).",
            required_labels=["model"],
            registry=self.registry,
        )
        self._metrics.append(metric)
        return metric

    def _gauge(self, name: str, label: str, what: str) -> tuple[Gauge, str]:
        metric = Gauge(
            name,
            f"Migrations {what}, by database.",
            required_labels=[label],
            registry=self.registry,
            # Every process computes the same numbers; the latest one is the truth.
            multiprocess_mode="livemostrecent",
        )
        self._metrics.append(metric)
        return metric, label

    def all(self) -> tuple[Counter | Gauge, ...]:
        """Every metric of the set."""
        return tuple(self._metrics)

    # ------------------------------------------------------------------ models

    def track(self, models: Mapping[type[Any], str]) -> None:
        """Create the series of ``models`` (at zero) for the signal receivers to use."""
        for model, label in models.items():
            series = [tuple(series_of(m, model=label) for m in family) for family in self._families]
            self._models[model] = _ModelSeries(*series)

    def saved(self, model: type[Any], created: bool) -> None:
        series = self._models.get(model)
        if series is not None:
            for child in series.inserts if created else series.updates:
                child.inc()

    def deleted(self, model: type[Any]) -> None:
        series = self._models.get(model)
        if series is not None:
            for child in series.deletes:
                child.inc()

    # ------------------------------------------------------------------ migrations

    def refresh_migrations(self, now: float | None = None) -> None:
        """Read the migration state if it is due (the metrics view calls this)."""
        if not self.applied:
            return
        now = time.monotonic() if now is None else now
        if now < self._next_refresh or not self._refresh_lock.acquire(blocking=False):
            return  # not due, or another thread is reading it right now
        try:
            self._next_refresh = now + MIGRATION_REFRESH_SECONDS
            for alias, counts in migration_counts():
                if counts is None:
                    continue
                applied, unapplied = counts
                for gauge, label in self.applied:
                    gauge.labels({label: alias}).set(applied)
                for gauge, label in self.unapplied:
                    gauge.labels({label: alias}).set(unapplied)
        finally:
            self._refresh_lock.release()


def migration_counts() -> Iterable[tuple[str, tuple[int, int] | None]]:
    """``(alias, (applied, unapplied))`` for every database; ``None`` when it failed.

    Applied: the migrations the database has recorded; unapplied: those the migration
    plan to the latest migrations would apply (as ``manage.py migrate`` would).
    """
    from django.db import connections
    from django.db.migrations.executor import MigrationExecutor

    for alias in connections:
        connection = connections[alias]
        if connection.vendor == "dummy":  # DATABASES = {}: nothing to read
            continue
        try:
            executor = MigrationExecutor(connection)
            plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
            yield alias, (len(executor.loader.applied_migrations), len(plan))
        except Exception as exc:
            logger.warning(
                "django_pytheus could not read the migrations of database %r (%s: %s); "
                "the migration metrics keep their last values.",
                alias,
                type(exc).__name__,
                exc,
            )
            yield alias, None


# --------------------------------------------------------------------------- signals

_DISPATCH = "django_pytheus.orm"
_connected: set[type[Any]] = set()
#: The set the receivers record into: that of the metrics in use
#: (:func:`django_pytheus.metrics.get_metrics` activates it).
_active: OrmMetrics | None = None


def activate(orm: OrmMetrics | None) -> None:
    """Make ``orm`` the set the signal receivers record into."""
    global _active
    _active = orm


def _on_save(sender: type[Any], created: bool = False, **kwargs: Any) -> None:
    orm = _active
    if orm is not None:
        orm.saved(sender, created)


def _on_delete(sender: type[Any], **kwargs: Any) -> None:
    orm = _active
    if orm is not None:
        orm.deleted(sender)


def install(settings: PytheusSettings, orm: OrmMetrics | None) -> None:
    """Connect the receivers for the models ``MODEL_METRICS`` chooses, and only those,
    and create their series in ``orm``; no database I/O.

    Raises :class:`~django.core.exceptions.ImproperlyConfigured` for an unknown model.
    """
    models = chosen_models(settings)
    uninstall()
    if orm is None or not models:
        return
    orm.track(models)
    for model in models:
        # One receiver per model, not one for all (sender=None): Django then still
        # fast-deletes the rows of every model not chosen.
        uid = f"{_DISPATCH}:{model._meta.label_lower}"
        post_save.connect(_on_save, sender=model, dispatch_uid=uid, weak=False)
        post_delete.connect(_on_delete, sender=model, dispatch_uid=uid, weak=False)
        _connected.add(model)


def uninstall() -> None:
    """Disconnect every receiver :func:`install` connected."""
    for model in _connected:
        uid = f"{_DISPATCH}:{model._meta.label_lower}"
        post_save.disconnect(sender=model, dispatch_uid=uid)
        post_delete.disconnect(sender=model, dispatch_uid=uid)
    _connected.clear()
