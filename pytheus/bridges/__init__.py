"""Bridges from other metrics libraries into pytheus's registry.

* :mod:`pytheus.bridges.prometheus_client`: the families of prometheus_client's
  registry, exact across processes on the Redis backend.
"""
