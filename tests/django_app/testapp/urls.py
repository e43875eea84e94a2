from __future__ import annotations

from django.contrib import admin
from django.urls import include, path, re_path

from tests.django_app.testapp import views

urlpatterns = [
    path("", views.hello, name="home"),
    path("hello/", views.hello, name="hello"),
    path("articles/<int:year>/", views.article, name="article"),
    re_path(r"^old/(?P<year>[0-9]{4})/$", views.article, name="old-article"),
    path("echo/", views.echo),
    path("status/<int:code>/", views.status, name="status"),
    path("in-progress/", views.in_progress),
    path("boom/", views.boom, name="boom"),
    path("abort/", views.abort),
    path("async/abort/", views.async_abort),
    path("async/", views.async_hello, name="async-hello"),
    path("async/boom/", views.async_boom),
    path("async/queries/", views.async_queries),
    path("queries/<int:n>/", views.queries, name="queries"),
    path("orm/", views.orm),
    path("stream/", views.stream),
    path("stream/queries/", views.stream_queries),
    path("async/stream/", views.async_stream),
    path("file/", views.file),
    path("cache/", views.cache_view),
    path("template/", views.template, name="template"),
    path("not-found/", views.not_found, name="not-found"),
    path("pid/", views.pid),
    path("warm-up/", views.pid),
    path("admin/", admin.site.urls),
    path("", include("django_pytheus.urls")),
]
