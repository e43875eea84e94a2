"""One small site, instrumented either with django_pytheus\x27s compatibility mode or with
django-prometheus 2.5 itself (``COMPAT_SIDE``), for tests/e2e/test_compat.py."""
