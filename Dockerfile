# The demo under gunicorn, for docker-compose.yaml (which gives it Redis and Prometheus).
#   docker compose up --build
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The library first: its layer is rebuilt only when the library changes.
COPY pyproject.toml README.md ./
COPY pytheus ./pytheus
COPY django_pytheus ./django_pytheus
RUN pip install '.[redis,django,celery]' gunicorn

COPY manage.py ./
COPY demo_project ./demo_project
# The admin's CSS, served by the demo itself with DEBUG off (DEMO_SERVE_STATIC=1).
RUN python manage.py collectstatic --noinput --verbosity 0

# An unprivileged user that owns only the directory of the SQLite database.
RUN useradd --create-home --uid 10001 demo \
    && mkdir /app/data && chown demo /app/data
USER demo
ENV DEMO_DB_PATH=/app/data/demo.sqlite3 \
    DEMO_DEBUG=0 \
    DEMO_SERVE_STATIC=1

EXPOSE 8000
# Migrates, seeds and prints the admin's one-time password (docker compose logs demo).
ENTRYPOINT ["demo_project/docker-entrypoint.sh"]
CMD ["gunicorn", "demo_project.wsgi", "--workers", "4", "--bind", "0.0.0.0:8000", "--access-logfile", "-"]
