#!/bin/sh
# The demo container's entry point: prepare the database, then run the command (gunicorn).
set -eu

# One secret key per container start, shared by every gunicorn worker through the
# environment; nothing secret is baked into the image or the compose file.
if [ -z "${DEMO_SECRET_KEY:-}" ]; then
    DEMO_SECRET_KEY=$(python -c 'import secrets; print(secrets.token_urlsafe(50))')
    export DEMO_SECRET_KEY
fi

python manage.py demo_setup --url http://127.0.0.1:8000/
exec "$@"
