#!/usr/bin/env bash
# Fails with one line when something already listens on HOST:PORT (`make demo` runs it first,
# before it touches the venv, the database or the running server's metrics):
#
#     scripts/port-free.sh 127.0.0.1:8000
#
# A connection that is accepted means a server is there (another `make demo`, most likely); a
# refused one, that the port is free. IPv6 addresses are written as runserver takes them:
# [::1]:8000.
set -euo pipefail

addr=${1:?usage: scripts/port-free.sh HOST:PORT}
host=${addr%:*}
port=${addr##*:}
host=${host#[}
host=${host%]}
if [[ -z $host || ! $port =~ ^[0-9]+$ || $addr != *:* ]]; then
    echo "make demo: DEMO_ADDR=$addr must be HOST:PORT, e.g. 127.0.0.1:8000." >&2
    exit 1
fi
# bash opens the connection itself (/dev/tcp); the subshell closes it at once.
if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
    echo "make demo: $addr is already in use (a demo running in another terminal?): stop it" \
        "(Ctrl-C there), or run this one elsewhere: make demo DEMO_ADDR=$host:$((port + 1))" >&2
    exit 1
fi
