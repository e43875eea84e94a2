#!/bin/sh
# The demo container's entry point: prepare the database, then run the command (gunicorn).
set -eu

# One secret key per container start, shared by every gunicorn worker through the
# environment; nothing secret is baked into the image or the compose file.
if [ -z "${DEMO_SECRET_KEY:-}" ]; then
    DEMO_SECRET_KEY=$(python -c 'import secrets; print(secrets.token_urlsafe(50))')
    export DEMO_SECRET_KEY
fi

# The web container prepares its database; a Celery worker (the compose file's "worker")
# has none to prepare: its tasks get what they need in their arguments.
if [ "${1:-}" != "celery" ]; then
    python manage.py demo_setup --url http://127.0.0.1:8000/
fi
exec "$@"
