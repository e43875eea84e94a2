"""MODEL_METRICS (model operations through signals) and MIGRATION_METRICS (read at scrapes)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.contrib.sessions.models import Session
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured
from django.db import OperationalError, connection
from django.db.migrations.recorder import MigrationRecorder
from django.db.models.deletion import Collector
from django.test.utils import CaptureQueriesContext, override_settings

from django_pytheus import orm
from django_pytheus.conf import parse_settings
from django_pytheus.metrics import get_metrics
from django_pytheus.startup import setup
from tests.django_app.conftest import SettingsFactory, restore_app, scrape, value
from tests.django_app.testapp.models import Item


def ops(model: str, name: str = "django_model") -> tuple[float, float, float]:
    p = scrape()
    return tuple(  # type: ignore[return-value]
        value(p, f"{name}_{op}_total", model=model) for op in ("inserts", "updates", "deletes")
    )


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (False, None),
        (True, "all"),
        (["testapp.Item"], {"testapp.item": "testapp.item"}),
        ({"testapp.Item": "item"}, {"testapp.item": "item"}),
    ],
)
def test_model_metrics_setting(raw: object, expected: object) -> None:
    assert parse_settings({"MODEL_METRICS": raw}).model_metrics == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("testapp.Item", "must be True (every model), False, a list of model labels"),
        (["Item"], "names 'Item', which is not a model label: write 'app_label.ModelName'"),
        ({"testapp.Item": ""}, "PYTHEUS['MODEL_METRICS']['testapp.Item'] must be the value"),
        ({"MIGRATION_METRICS": 1}, None),
    ],
)
def test_model_metrics_setting_errors(raw: object, message: str | None) -> None:
    settings = raw if message is None else {"MODEL_METRICS": raw}
    with pytest.raises(ImproperlyConfigured) as info:
        parse_settings(settings)
    assert (message or "PYTHEUS['MIGRATION_METRICS'] must be True or False") in str(info.value)


def test_unknown_model_is_a_system_check_error_with_a_suggestion() -> None:
    try:
        with override_settings(PYTHEUS={"MODEL_METRICS": ["testapp.Itme"]}):
            with pytest.raises(ImproperlyConfigured, match=r"Did you mean 'testapp\.Item'"):
                setup()
            errors = [e for e in run_checks() if e.id == "django_pytheus.E004"]
        assert len(errors) == 1
        assert "'testapp.itme', which is not an installed model" in errors[0].msg
    finally:
        restore_app()


# --------------------------------------------------------------------------- models


@pytest.mark.django_db
def test_saves_and_deletes_are_counted(pytheus_settings: SettingsFactory) -> None:
    pytheus_settings(MODEL_METRICS={"testapp.Item": "item"})
    assert ops("item") == (0, 0, 0)  # the series exist before any operation
    item = Item.objects.create(name="a")
    item.value = 3
    item.save()
    item.save(update_fields=["value"])
    Item.objects.create(name="b")
    Item.objects.create(name="c")
    Item.objects.filter(name="b").update(value=1)  # no signal: not counted
    item.delete()
    Item.objects.filter(name__in=["b", "c"]).delete()  # each row, as post_delete sees it
    assert ops("item") == (3, 2, 3)
    # Other models are not counted, and keep fast deletes.
    Group.objects.create(name="g")
    assert not [k for k in scrape().samples if ("model", "auth.group") in k[1]]
    assert Collector(using="default").can_fast_delete(Session.objects.all())
    assert not Collector(using="default").can_fast_delete(Item.objects.all())


@pytest.mark.django_db
def test_every_model(pytheus_settings: SettingsFactory) -> None:
    pytheus_settings(MODEL_METRICS=True)
    Group.objects.create(name="g")
    Item.objects.create(name="a")
    assert ops("auth.group")[0] == 1
    assert ops("testapp.item")[0] == 1
    assert ops("auth.permission") == (0, 0, 0)


@pytest.mark.django_db
def test_off_again_disconnects(pytheus_settings: SettingsFactory) -> None:
    pytheus_settings(MODEL_METRICS=True)
    pytheus_settings(MODEL_METRICS=False)
    Item.objects.create(name="a")
    assert not [k for k in scrape().samples if k[0].startswith("django_model_")]
    assert orm._connected == set()


@pytest.mark.django_db
def test_compat_names_are_shared_or_added(pytheus_settings: SettingsFactory) -> None:
    pytheus_settings(MODEL_METRICS=["testapp.Item"], COMPAT="django_prometheus")
    Item.objects.create(name="a")
    assert ops("testapp.item") == (1, 0, 0)  # the same series serve both
    pytheus_settings(MODEL_METRICS=["testapp.Item"], COMPAT="django_prometheus", NAMESPACE="shop")
    Item.objects.create(name="b")
    assert ops("testapp.item") == (1, 0, 0)
    assert ops("testapp.item", "shop_model") == (1, 0, 0)


# --------------------------------------------------------------------------- migrations


@pytest.mark.django_db
def test_no_database_work_at_setup_only_at_scrapes(pytheus_settings: SettingsFactory) -> None:
    with CaptureQueriesContext(connection) as queries:
        pytheus_settings(MIGRATION_METRICS=True, COMPAT="django_prometheus")
    assert len(queries) == 0
    recorder = MigrationRecorder(connection)
    applied = len(recorder.applied_migrations())
    assert applied > 10  # contrib apps' migrations
    p = scrape()
    assert value(p, "django_db_migrations_applied", alias="default") == applied
    assert value(p, "django_db_migrations_unapplied", alias="default") == 0
    assert value(p, "django_migrations_applied_total", connection="default") == applied
    assert value(p, "django_migrations_unapplied_total", connection="default") == 0

    # A migration un-recorded: seen at the next refresh, not before.
    recorder.record_unapplied("auth", "0012_alter_user_first_name_max_length")
    try:
        assert value(scrape(), "django_db_migrations_unapplied", alias="default") == 0
        m = get_metrics().orm
        assert m is not None
        m._next_refresh = 0.0  # the refresh interval has passed
        p = scrape()
        assert value(p, "django_db_migrations_unapplied", alias="default") == 1
        assert value(p, "django_db_migrations_applied", alias="default") == applied - 1
    finally:
        recorder.record_applied("auth", "0012_alter_user_first_name_max_length")


@pytest.mark.django_db
def test_unreadable_database_keeps_the_scrape(
    pytheus_settings: SettingsFactory,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pytheus_settings(MIGRATION_METRICS=True)
    assert value(scrape(), "django_db_migrations_unapplied", alias="default") == 0

    def locked(self: object) -> None:  # what a busy SQLite file answers
        raise OperationalError("database is locked")

    monkeypatch.setattr(MigrationRecorder, "applied_migrations", locked)
    m = get_metrics().orm
    assert m is not None
    m._next_refresh = 0.0
    p = scrape()  # answered, with the last values
    assert value(p, "django_db_migrations_unapplied", alias="default") == 0
    assert "could not read the migrations of database 'default' (OperationalError" in caplog.text
