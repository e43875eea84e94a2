from __future__ import annotations

from django.urls import path

from demo_project.shop import views

app_name = "shop"

urlpatterns = [
    path("", views.index, name="index"),
    path("fast/", views.fast, name="fast"),
    path("slow/", views.slow, name="slow"),
    path("products/", views.products, name="products"),
    path("products/<int:pk>/", views.product, name="product"),
    path("boom/", views.boom, name="boom"),
    path("async/", views.async_view, name="async"),
    path("cached/", views.cached, name="cached"),
    path("checkout/", views.checkout, name="checkout"),
]
