"""The shop's background work: a Celery task per e-mail.

The task gets what the e-mail says, not the order's id: a worker needs no access to the
shop's database (the SQLite file of the web container).
"""

from __future__ import annotations

from celery import shared_task
from django.core.mail import send_mail


@shared_task
def send_order_confirmation(order: int, product: str, quantity: int, total: str) -> None:
    """The confirmation of one order (to the console backend: printed, never sent)."""
    send_mail(
        subject=f"Your order {order}",
        message=f"Thank you! {quantity} x {product}, {total} EUR in total.",
        from_email="shop@example.invalid",
        recipient_list=["customer@example.invalid"],
    )
