"""Business metrics of the shop, defined with the pytheus core API (no Django involved).

They are created at import, in the global registry, beside django_pytheus's request and
database metrics, and served by the same ``/metrics``:

==================================  =========  ===================  =========================
metric                              type       labels               recorded by
==================================  =========  ===================  =========================
shop_orders_total                   counter    category, payment    a successful checkout
shop_checkout_failures_total        counter    reason               a refused checkout
shop_order_value_euros              histogram  category             a successful checkout
shop_stock_units                    gauge      category             the index page, checkouts
shop_checkout_duration_seconds      summary    (none)               every checkout
==================================  =========  ===================  =========================

The summary has quantiles (median, 90th and 99th percentile over the last 10 minutes)
with the in-memory backend only: quantiles of several processes cannot be added up, so
the Redis backend refuses them; there it exposes ``_count`` and ``_sum``, and
``shop_order_value_euros`` shows how a histogram answers the same question with
``histogram_quantile()`` in PromQL.
"""

from __future__ import annotations

from pytheus.backends import MemoryBackend, get_backend
from pytheus.metrics import Counter, Gauge, Histogram, Summary

__all__ = [
    "CHECKOUT_DURATION",
    "CHECKOUT_FAILURES",
    "ORDERS",
    "ORDER_VALUE",
    "STOCK",
    "summary_quantiles",
]


def summary_quantiles() -> tuple[float, ...]:
    """The quantiles the active backend can keep: none across processes (Redis)."""
    return (0.5, 0.9, 0.99) if isinstance(get_backend(), MemoryBackend) else ()


ORDERS = Counter(
    "shop_orders",  # exposed as shop_orders_total
    "Orders placed.",
    required_labels=["category", "payment"],
)
CHECKOUT_FAILURES = Counter(
    "shop_checkout_failures",
    "Checkouts refused, by reason.",
    required_labels=["reason"],
)
ORDER_VALUE = Histogram(
    "shop_order_value",
    "Value of an order.",
    required_labels=["category"],
    buckets=[5, 10, 20, 50, 100, 200, 500, 1000, 2500, 5000],
    unit="euros",
)
STOCK = Gauge(
    "shop_stock_units",
    "Units in stock, by category.",
    required_labels=["category"],
    # Every worker reads the same database: across processes, the value set last is true.
    multiprocess_mode="mostrecent",
)
CHECKOUT_DURATION = Summary(
    "shop_checkout_duration_seconds",
    "Time spent placing an order.",
    quantiles=summary_quantiles(),
)
