"""Who may open the metrics dashboard and its JSON view, and what the admin offers.

Only active staff users with ``django_pytheus.view_metric`` (superusers have it):
anonymous users (and logged-in users who are not active staff) are sent to the admin
login; staff without the permission get 403. Nothing can be added, changed or deleted.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings
from django.urls import NoReverseMatch, reverse

from django_pytheus.admin import MetricAdmin
from django_pytheus.models import Metric
from pytheus.metrics import Counter

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:django_pytheus_metric_changelist"


def dashboard_urls() -> list[str]:
    return [
        reverse(CHANGELIST),
        reverse("admin:django_pytheus_metric_data"),
        reverse("admin:django_pytheus_metric_family", args=["django_http_requests"]),
    ]


def logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def assert_sent_to_login(client: Client, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 302, (url, response.status_code)
    login = reverse("admin:login")
    assert response["Location"].startswith(f"{login}?next="), response["Location"]
    assert b"django_http_requests" not in response.content


def test_the_changelist_url_reverses() -> None:
    assert reverse(CHANGELIST) == "/admin/django_pytheus/metric/"
    assert reverse("admin:django_pytheus_metric_data") == "/admin/django_pytheus/metric/data/"


def test_anonymous_users_are_sent_to_the_login() -> None:
    for url in dashboard_urls():
        assert_sent_to_login(Client(), url)


def test_users_who_are_not_active_staff_are_sent_to_the_login(
    make_user: Callable[..., Any],
) -> None:
    not_staff = make_user(staff=False, view_metric=True)
    inactive = make_user(active=False, view_metric=True)
    inactive_superuser = make_user(active=False, superuser=True)
    for user in (not_staff, inactive, inactive_superuser):
        client = logged_in(user)
        for url in dashboard_urls():
            assert_sent_to_login(client, url)


def test_staff_without_the_permission_get_403(make_user: Callable[..., Any]) -> None:
    client = logged_in(make_user())
    for url in dashboard_urls():
        response = client.get(url)
        assert response.status_code == 403, url
        assert b"django_http_requests" not in response.content


def test_staff_with_the_permission_and_superusers_get_in(make_user: Callable[..., Any]) -> None:
    for user in (make_user(view_metric=True), make_user(superuser=True)):
        client = logged_in(user)
        page, data, family = (client.get(url) for url in dashboard_urls())
        assert page.status_code == 200
        assert b"django_http_requests_total" in page.content
        assert data.status_code == 200
        assert data["Content-Type"] == "application/json"
        assert "django_http_requests" in data.json()["families"]
        assert family.status_code == 200
        # admin_view: never cached by the browser or a proxy.
        for response in (page, data, family):
            assert "no-cache" in response["Cache-Control"]


def test_the_permission_is_the_only_one_and_comes_from_the_migration() -> None:
    codenames = Permission.objects.filter(content_type__app_label="django_pytheus")
    assert [p.codename for p in codenames] == ["view_metric"]
    assert Metric._meta.managed is False
    assert "django_pytheus_metric" not in connection.introspection.table_names()


def test_the_admin_index_lists_metrics_under_the_apps_heading(
    make_user: Callable[..., Any],
) -> None:
    client = logged_in(make_user(view_metric=True))
    response = client.get(reverse("admin:index"))
    assert response.status_code == 200
    (app,) = [a for a in response.context["app_list"] if a["app_label"] == "django_pytheus"]
    assert app["name"] == "Prometheus metrics (pytheus)"
    (model,) = app["models"]
    assert model["name"] == "Metrics"
    assert model["admin_url"] == reverse(CHANGELIST)
    assert model["add_url"] is None
    assert model["perms"] == {"add": False, "change": False, "delete": False, "view": True}
    html = response.content.decode()
    assert f'href="{reverse(CHANGELIST)}"' in html
    assert "Prometheus metrics (pytheus)" in html
    # The app's own index page lists it too.
    app_page = client.get(reverse("admin:app_list", args=["django_pytheus"]))
    assert app_page.status_code == 200
    assert reverse(CHANGELIST) in app_page.content.decode()


def test_staff_without_the_permission_do_not_see_the_entry(
    make_user: Callable[..., Any],
) -> None:
    client = logged_in(make_user())
    response = client.get(reverse("admin:index"))
    assert response.status_code == 200
    labels = [a["app_label"] for a in response.context["app_list"]]
    assert "django_pytheus" not in labels
    assert reverse(CHANGELIST) not in response.content.decode()


def test_nothing_can_be_added_changed_or_deleted(make_user: Callable[..., Any]) -> None:
    for name in ("add", "change", "delete", "history"):
        with pytest.raises(NoReverseMatch):
            reverse(f"admin:django_pytheus_metric_{name}", args=[] if name == "add" else ["x"])
    superuser = make_user(superuser=True)
    from django.contrib import admin

    model_admin = admin.site._registry[Metric]
    assert isinstance(model_admin, MetricAdmin)
    request = Client().get("/").wsgi_request
    request.user = superuser
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)
    assert model_admin.has_view_permission(request)
    # A POST to the dashboard changes nothing and is not an error.
    client = logged_in(superuser)
    assert client.post(reverse(CHANGELIST)).status_code == 200


def test_the_dashboard_reads_no_metric_data_from_the_database(
    make_user: Callable[..., Any],
) -> None:
    client = logged_in(make_user(view_metric=True))
    for url in dashboard_urls():
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        for query in queries.captured_queries:
            assert "django_pytheus" not in query["sql"], query["sql"]


@override_settings(ROOT_URLCONF="tests.django_app.testapp.urls_custom_admin")
def test_on_a_custom_admin_site_links_stay_on_that_site(make_user: Callable[..., Any]) -> None:
    client = logged_in(make_user(view_metric=True))
    url = reverse("admin:django_pytheus_metric_changelist", current_app="ops")
    assert url == "/ops/django_pytheus/metric/"
    Counter("ops_jobs", "Jobs.").inc()
    html = client.get(url + "?q=ops_jobs").content.decode()
    assert 'data-pytheus-data-url="/ops/django_pytheus/metric/data/?q=ops_jobs"' in html
    assert 'href="/ops/django_pytheus/metric/family/ops_jobs/"' in html
    assert 'href="/ops/"' in html  # the breadcrumbs' Home
    assert not re.search(r"(?<!/static)/admin/", html)
    assert client.get("/ops/django_pytheus/metric/data/").status_code == 200
