"""Celery under test: real workers (prefork, threads, solo) on a Redis broker that the
suite starts, a Django site that publishes tasks, metrics through the Redis backend."""
