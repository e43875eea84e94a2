"""Query metrics: statement kinds, durations, errors, connections, queries per request."""

from __future__ import annotations

import threading

import pytest
from django.db import IntegrityError, connection, connections, transaction
from django.test import Client

from django_pytheus import db
from django_pytheus.db import QueryObserver, statement_kind
from tests.django_app.conftest import scrape, value
from tests.django_app.testapp.models import Item

SQLITE = {"alias": "default", "vendor": "sqlite"}


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("SELECT 1", "select"),
        ('SELECT "a"."id" FROM "a"', "select"),
        ("select 1", "select"),
        ("  \n\tSELECT 1", "select"),
        ("INSERT INTO t VALUES (1)", "insert"),
        ("UPDATE t SET a = 1", "update"),
        ("DELETE FROM t", "delete"),
        ("-- a comment\nSELECT 1", "select"),
        ("/* app:view */ UPDATE t SET a = 1", "update"),
        ("/* unterminated", "other"),
        ("(SELECT 1) UNION (SELECT 2)", "select"),
        ("WITH x AS (SELECT 1) SELECT * FROM x", "select"),
        ("with recursive x(n) as (select 1 union select n + 1 from x) delete from t", "delete"),
        ("WITH a AS (SELECT ')'), b AS (SELECT 2) INSERT INTO t SELECT * FROM a", "insert"),
        ("WITH a AS MATERIALIZED (DELETE FROM t RETURNING *) SELECT * FROM a", "select"),
        ("WITH broken", "other"),
        ("SAVEPOINT s1", "other"),
        ("CREATE TABLE t (a int)", "other"),
        ("", "other"),
        (b"SELECT 1", "select"),
        (object(), "other"),
    ],
)
def test_statement_kind(sql: object, kind: str) -> None:
    assert statement_kind(sql) == kind


@pytest.mark.django_db
def test_raw_queries_by_statement_kind() -> None:
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE kinds (a int)")
        cursor.execute("INSERT INTO kinds VALUES (1)")
        cursor.executemany("INSERT INTO kinds VALUES (%s)", [(2,), (3,)])
        cursor.execute("/* tagged */ UPDATE kinds SET a = a + 1")
        cursor.execute("SELECT a FROM kinds")
        cursor.execute("WITH x AS (SELECT 1) SELECT * FROM x")
        cursor.execute("DELETE FROM kinds")
        cursor.execute("DROP TABLE kinds")
    p = scrape()
    count = "django_db_query_duration_seconds_count"
    assert value(p, count, **SQLITE, statement="insert") == 2
    assert value(p, count, **SQLITE, statement="update") == 1
    assert value(p, count, **SQLITE, statement="select") == 2
    assert value(p, count, **SQLITE, statement="delete") == 1
    assert value(p, count, **SQLITE, statement="other") == 2
    assert value(p, "django_db_query_duration_seconds_sum", **SQLITE, statement="select") > 0


@pytest.mark.django_db
def test_orm_statement_kinds() -> None:
    item = Item.objects.create(name="a", value=1)
    Item.objects.filter(pk=item.pk).update(value=2)
    assert list(Item.objects.values_list("value", flat=True)) == [2]
    Item.objects.all().delete()  # a SELECT for the cascade, then the DELETE
    p = scrape()
    count = "django_db_query_duration_seconds_count"
    assert value(p, count, **SQLITE, statement="insert") == 1
    assert value(p, count, **SQLITE, statement="update") == 1
    assert value(p, count, **SQLITE, statement="delete") == 1
    assert value(p, count, **SQLITE, statement="select") >= 1


@pytest.mark.django_db
def test_errors_by_type() -> None:
    Item.objects.create(name="same")
    with pytest.raises(IntegrityError), transaction.atomic():
        Item.objects.create(name="same")
    with pytest.raises(Exception, match="no such table"), connection.cursor() as cursor:
        cursor.execute("SELECT * FROM missing_table")
    p = scrape()
    errors = "django_db_query_errors_total"
    assert value(p, errors, **SQLITE, type="IntegrityError") == 1
    assert value(p, errors, **SQLITE, type="OperationalError") == 1
    # Failed queries are timed too.
    assert value(p, "django_db_query_duration_seconds_count", **SQLITE, statement="insert") == 2


@pytest.mark.django_db
def test_queries_per_request_by_view() -> None:
    client = Client()
    client.get("/queries/3/")
    client.get("/queries/7/")
    client.get("/hello/")
    p = scrape()
    view = "/queries/<int:n>/"
    assert value(p, "django_db_queries_per_request_count", view=view) == 2
    assert value(p, "django_db_queries_per_request_sum", view=view) == 10
    assert value(p, "django_db_queries_per_request_bucket", view=view, le="3.0") == 1
    assert value(p, "django_db_queries_per_request_bucket", view=view, le="10.0") == 2
    assert value(p, "django_db_queries_per_request_sum", view="/hello/") == 0


@pytest.mark.django_db
def test_orm_view() -> None:
    assert Client().get("/orm/").content == b"a"
    p = scrape()
    assert value(p, "django_db_queries_per_request_sum", view="/orm/") == 4


@pytest.mark.django_db(transaction=True)
def test_every_thread_and_new_connection_is_observed() -> None:
    # A thread gets connection objects of its own, which connect on first use.
    done = []

    def work() -> None:
        try:
            with connections["default"].cursor() as cursor:
                cursor.execute("SELECT 1")
            done.append([type(w) for w in connections["default"].execute_wrappers])
        finally:
            connections.close_all()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert done == [[QueryObserver]]
    p = scrape()
    assert value(p, "django_db_query_duration_seconds_count", **SQLITE, statement="select") == 1
    assert value(p, "django_db_connections_total", **SQLITE) >= 1


@pytest.mark.django_db
def test_observer_is_installed_once_and_outside_a_wrapper_block() -> None:
    assert [type(w) for w in connection.execute_wrappers] == [QueryObserver]
    calls = []

    def blocker(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        calls.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(blocker):
        # A reconnect inside someone's block: our observer goes in front, so their
        # block's exit still pops their wrapper, not ours.
        db.observe_connection(connection)
        connection.execute_wrappers.remove(connection.execute_wrappers[0])
        assert db.observe_connection(connection) is True
        assert db.observe_connection(connection) is False
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    assert calls == ["SELECT 1"]
    assert [type(w) for w in connection.execute_wrappers] == [QueryObserver]


@pytest.mark.django_db
def test_db_metrics_can_be_turned_off(pytheus_settings) -> None:
    pytheus_settings(DB_METRICS=False)
    assert connection.execute_wrappers == []
    Client().get("/queries/2/")
    p = scrape()
    assert not [k for k in p.samples if k[0].startswith("django_db_")]
