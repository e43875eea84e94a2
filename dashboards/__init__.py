"""The Grafana dashboard of django_pytheus: generate.py builds django.json."""
