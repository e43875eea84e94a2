from __future__ import annotations

from django.contrib import admin

from demo_project.shop.models import Category, Order, Product


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["name"]


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["name", "category", "price", "stock"]
    list_filter = ["category"]
    # One query for the list, not one per row: compare django_db_queries_per_request
    # for /admin/shop/product/ with the demo's /products/ view.
    list_select_related = ["category"]


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["created", "product", "quantity", "payment", "total"]
    list_filter = ["payment"]
    list_select_related = ["product"]
