#!/usr/bin/env bash
# Installs the system programs the test suite runs for real: redis-server (the Redis backend's
# tests start their own servers on free loopback ports; the Sentinel tests run it with
# --sentinel, so Debian's redis-sentinel package is not needed), promtool and the Prometheus server (both
# from Debian's `prometheus` package; promtool checks our exposition output, the server scrapes the
# demo in tests/e2e) and Debian's headless-capable Chromium at
# /usr/bin/chromium (Playwright drives it in the admin page's browser tests; `playwright install`
# would download a browser build of its own, which we never do). Does nothing when all are
# already there.
set -euo pipefail

packages=()
command -v redis-server >/dev/null 2>&1 || packages+=(redis-server)
{ command -v promtool && command -v prometheus; } >/dev/null 2>&1 || packages+=(prometheus)
[ -x /usr/bin/chromium ] || packages+=(chromium)
[ ${#packages[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-system-deps: missing ${packages[*]} and no apt-get here; install them by hand." >&2
    exit 1
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || {
        echo "install-system-deps: need root (or sudo) to install ${packages[*]}." >&2
        exit 1
    }
    sudo=(sudo)
fi

# The packages would start a system redis on port 6379 and a prometheus server on 9090. The tests
# start their own servers on free ports and need neither, so keep services from starting during the
# install: policy-rc.d exit code 101 means "action forbidden" to invoke-rc.d and deb-systemd-invoke.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 755 "$policy"
    trap '"${sudo[@]}" rm -f "$policy"' EXIT
fi

# Chromium alone is about 355 MB installed (with its libraries), the largest part of a first
# `make test`: say so, and show apt's progress (a line per package fetched and set up).
echo "install-system-deps: installing ${packages[*]} with apt-get (chromium alone is about" \
    "355 MB; a few minutes on a first run)"
log=$(mktemp)
if ! { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends "${packages[@]}"; } 2>&1 | tee "$log" |
    { grep --line-buffered -E '^(Need to get|After this operation|Setting up)' || true; } |
    sed -u 's/^/install-system-deps:   /'; then
    cat "$log" >&2
    rm -f "$log"
    echo "install-system-deps: apt-get failed (log above)." >&2
    exit 1
fi
rm -f "$log"

# Where systemd runs, also keep the services from starting at the next boot.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    for unit in redis-server prometheus; do
        "${sudo[@]}" systemctl disable --now "$unit" >/dev/null 2>&1 || true
    done
fi

for tool in redis-server promtool prometheus /usr/bin/chromium; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "install-system-deps: $tool is still missing after the install." >&2
        exit 1
    }
done
