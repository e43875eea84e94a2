"""Experimental helpers, kept for code written against pytheus 0.6.1.

:mod:`pytheus.experimental.compatibility` makes code written for ``prometheus_client``
record into pytheus; :mod:`pytheus.experimental.adapters` holds the classes it uses.
"""
