"""The demo: a small shop on Django, instrumented by django_pytheus (``make demo``)."""
