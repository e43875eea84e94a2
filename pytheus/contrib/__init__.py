"""Integrations with other libraries, each importing its library only when used.

* :mod:`pytheus.contrib.celery`: task and worker metrics from Celery's signals.
"""
