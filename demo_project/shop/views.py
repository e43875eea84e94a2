"""Views that give every metric something to show.

==================  ==========================================================================
``/fast/``          answers at once
``/slow/``          sleeps a random 50 ms to ``?max=`` seconds (0.5 by default, 2 at most)
``/products/``      one query per product (N+1): watch ``django_db_queries_per_request``;
                    ``?fixed=1`` does it in one query with ``select_related``
``/products/<id>/`` one product: the ``view`` label is the route, not the path
``/boom/``          raises: a 500 and ``django_http_exceptions_total``
``/async/``         an ``async def`` view with an async ORM query
``/cached/``        the best sellers, from the cache for 10 s: cache hits and misses
``/checkout/``      POST: places an order and records the business metrics
==================  ==========================================================================
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from django.contrib import messages
from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, F, Sum
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_POST

from demo_project.commands import manage_py
from demo_project.shop import metrics
from demo_project.shop.models import Category, Order, Product
from pytheus.backends import get_backend

SLOW_DEFAULT = 0.5
SLOW_MAX = 2.0  # a demo view must never hold a worker for long
CACHE_SECONDS = 10


class DemoError(RuntimeError):
    """Raised by the failing view, so its type is easy to spot in the metrics."""


def _update_stock_gauge() -> dict[str, int]:
    stock = dict(
        Category.objects.annotate(units=Sum("products__stock")).values_list("name", "units")
    )
    for name, units in stock.items():
        metrics.STOCK.labels(category=name).set(units or 0)
    return {name: units or 0 for name, units in stock.items()}


def dashboard_url() -> str | None:
    """The django_pytheus metrics dashboard in the admin, if this version has one."""
    try:
        return reverse("admin:django_pytheus_metric_changelist")
    except NoReverseMatch:
        return None


def index(request: HttpRequest) -> HttpResponse:
    """Links to everything, the checkout form and what the backend says about itself."""
    backend = get_backend()
    status = getattr(backend, "status", None)  # the in-memory backend has none
    context = {
        "backend": type(backend).__name__,
        "backend_status": status() if callable(status) else None,
        "stock": _update_stock_gauge(),
        "products": Product.objects.select_related("category").filter(stock__gt=0),
        "payments": Order.Payment.choices,
        "recent_orders": Order.objects.select_related("product")[:5],
        "quantiles": metrics.summary_quantiles(),
        "dashboard": dashboard_url(),
        "traffic_command": manage_py(
            "generate_traffic", "--url", f"http://{request.get_host()}/", "--requests", "200"
        ),
    }
    return render(request, "shop/index.html", context)


def fast(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"ok": True})


def slow(request: HttpRequest) -> HttpResponse:
    try:
        upper = float(request.GET.get("max", SLOW_DEFAULT))
    except ValueError:
        upper = SLOW_DEFAULT
    upper = min(max(upper, 0.05), SLOW_MAX)
    seconds = random.uniform(0.05, upper)
    time.sleep(seconds)
    return JsonResponse({"slept": round(seconds, 3)})


def products(request: HttpRequest) -> HttpResponse:
    """N+1 on purpose: ``product.category`` is a query per product unless ``?fixed=1``."""
    queryset = Product.objects.all()
    if request.GET.get("fixed"):
        queryset = queryset.select_related("category")
    rows = [
        {"id": p.pk, "name": p.name, "category": p.category.name, "price": str(p.price)}
        for p in queryset
    ]
    return JsonResponse({"products": rows})


def product(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        p = Product.objects.select_related("category").get(pk=pk)
    except Product.DoesNotExist:
        raise Http404(f"No product {pk}.") from None
    return JsonResponse({"id": p.pk, "name": p.name, "category": p.category.name, "stock": p.stock})


def boom(request: HttpRequest) -> HttpResponse:
    raise DemoError("This view always fails, so that the error metrics have something to count.")


async def async_view(request: HttpRequest) -> HttpResponse:
    await asyncio.sleep(random.uniform(0.005, 0.05))
    count = await Product.objects.acount()
    return JsonResponse({"products": count, "async": True})


def _best_sellers() -> list[dict[str, Any]]:
    top = (
        Product.objects.annotate(sold=Sum("orders__quantity"), orders_count=Count("orders"))
        .filter(orders_count__gt=0)
        .order_by("-sold")[:5]
    )
    return [{"name": p.name, "sold": p.sold} for p in top]


def cached(request: HttpRequest) -> HttpResponse:
    """Best sellers, computed at most once per CACHE_SECONDS (per cache: locmem is per process)."""
    key = "shop:best-sellers"
    best = cache.get(key)
    hit = best is not None
    if not hit:
        best = _best_sellers()
        cache.set(key, best, CACHE_SECONDS)
    return JsonResponse({"best_sellers": best, "cache": "hit" if hit else "miss"})


@require_POST
def checkout(request: HttpRequest) -> HttpResponse:
    """Place an order (a form on the index page); records the business metrics."""
    with metrics.CHECKOUT_DURATION.time():
        try:
            pk = int(request.POST.get("product", ""))
            quantity = int(request.POST.get("quantity", "1"))
        except ValueError:
            metrics.CHECKOUT_FAILURES.labels(reason="invalid").inc()
            return HttpResponse("product and quantity must be numbers.\n", status=400)
        payment = request.POST.get("payment", Order.Payment.CARD)
        if payment not in Order.Payment.values or not 1 <= quantity <= 10:
            metrics.CHECKOUT_FAILURES.labels(reason="invalid").inc()
            return HttpResponse("payment or quantity is not valid.\n", status=400)
        with transaction.atomic():
            # The UPDATE both checks and takes the stock: two workers cannot both sell
            # the last unit.
            taken = Product.objects.filter(pk=pk, stock__gte=quantity).update(
                stock=F("stock") - quantity
            )
            if not taken:
                if not Product.objects.filter(pk=pk).exists():
                    metrics.CHECKOUT_FAILURES.labels(reason="unknown_product").inc()
                    return HttpResponse(f"No product {pk}.\n", status=404)
                metrics.CHECKOUT_FAILURES.labels(reason="out_of_stock").inc()
                return HttpResponse("Out of stock.\n", status=409)
            p = Product.objects.select_related("category").get(pk=pk)
            total = p.price * quantity
            order = Order.objects.create(product=p, quantity=quantity, payment=payment, total=total)
        category = p.category.name
        metrics.ORDERS.labels(category=category, payment=payment).inc()
        metrics.ORDER_VALUE.labels(category=category).observe(float(total))
        units = Product.objects.filter(category=p.category).aggregate(s=Sum("stock"))["s"]
        metrics.STOCK.labels(category=category).set(units or 0)
    messages.success(request, f"Order {order.pk}: {order}.")
    return redirect("shop:index")


__all__ = [
    "DemoError",
    "async_view",
    "boom",
    "cached",
    "checkout",
    "dashboard_url",
    "fast",
    "index",
    "product",
    "products",
    "slow",
]
