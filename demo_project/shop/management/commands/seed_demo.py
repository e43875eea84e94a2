"""``manage.py seed_demo``: the shop's categories, products and a few past orders.

Idempotent: run it again to put the stock back to where it started.
"""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from demo_project.shop.models import Category, Order, Product

CATALOGUE: dict[str, list[tuple[str, str]]] = {
    "Books": [
        ("Observability in Practice", "39.00"),
        ("PromQL Pocket Guide", "14.50"),
        ("The Histogram Handbook", "27.90"),
        ("Counters All the Way Down", "19.99"),
    ],
    "Coffee": [
        ("Espresso Beans 1 kg", "24.00"),
        ("Filter Roast 500 g", "11.50"),
        ("Decaf 250 g", "7.90"),
        ("Cold Brew Kit", "34.00"),
    ],
    "Hardware": [
        ("Rack Server", "899.00"),
        ("Network Switch", "149.00"),
        ("SSD 2 TB", "129.00"),
        ("Status Light", "45.00"),
    ],
}
STOCK = 250
PAST_ORDERS = 30


class Command(BaseCommand):
    help = "Create the demo shop's products (stock back to full) and, once, some past orders."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--seed", type=int, default=42, help="random seed of the past orders")

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        products = []
        for category_name, items in CATALOGUE.items():
            category, _ = Category.objects.get_or_create(name=category_name)
            for name, price in items:
                product, _ = Product.objects.update_or_create(
                    name=name,
                    defaults={"category": category, "price": Decimal(price), "stock": STOCK},
                )
                products.append(product)
        created = 0
        if not Order.objects.exists():
            rng = random.Random(options["seed"])
            for _ in range(PAST_ORDERS):
                product = rng.choice(products)
                quantity = rng.randint(1, 3)
                Order.objects.create(
                    product=product,
                    quantity=quantity,
                    payment=rng.choice(Order.Payment.values),
                    total=product.price * quantity,
                )
                created += 1
        self.stdout.write(
            f"Seeded {len(CATALOGUE)} categories, {len(products)} products ({STOCK} in stock "
            f"each) and {created} past orders."
        )
