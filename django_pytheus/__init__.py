"""django_pytheus: Prometheus metrics for Django, on the pytheus core.

Four edits install it::

    INSTALLED_APPS += ["django_pytheus"]
    MIDDLEWARE = ["django_pytheus.middleware.PytheusMiddleware", *MIDDLEWARE]
    urlpatterns += [path("", include("django_pytheus.urls"))]  # serves /metrics
    PYTHEUS = {  # optional; in-memory otherwise
        "BACKEND": "pytheus.backends.redis.MultiProcessRedisBackend",
        "BACKEND_CONFIG": {"url": "redis://127.0.0.1:6379/0"},
    }

Modules: :mod:`~django_pytheus.conf` (settings), :mod:`~django_pytheus.apps` (what
``ready()`` connects), :mod:`~django_pytheus.startup` (what it sets up),
:mod:`~django_pytheus.metrics` (what is recorded), :mod:`~django_pytheus.middleware`,
:mod:`~django_pytheus.db`, :mod:`~django_pytheus.cache`, :mod:`~django_pytheus.views`
and :mod:`~django_pytheus.access` (the /metrics view and who may read it),
:mod:`~django_pytheus.checks` (system checks), :mod:`~django_pytheus.admin` (the metrics
dashboard in the Django admin; :mod:`~django_pytheus.dashboard` computes what it shows,
:mod:`~django_pytheus.models` gives it its permission).
"""
