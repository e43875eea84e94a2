"""The demo's shop: products, orders, and views that give every metric something to show."""
