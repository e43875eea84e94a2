#!/usr/bin/env bash
# Run pytheus 0.6.1's own test suite against this package, outside the repository, and
# classify the results (docs/compat.md quotes the figures).
#
#   scripts/pytheus061/run.sh /path/to/a/checkout/of/Llandy3d/pytheus/at/0.6.1
#
# Nothing of pytheus 0.6.1 is copied into this repository: its tests are copied to a
# temporary directory (without its pytheus/ package, which would shadow ours), with
# harness_conftest.py beside them, and run in a venv of their own where this package is
# installed. The suite talks to Redis on 127.0.0.1:6379 (hard-coded there): a redis-server
# is started on that port for the run if it is free, and stopped by its pid.
set -euo pipefail
checkout=${1:?usage: run.sh PYTHEUS_0.6.1_CHECKOUT}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
work=$(mktemp -d)
trap 'if [[ -n "${redis_pid:-}" ]]; then kill "$redis_pid"; fi; rm -rf "$work"' EXIT

cp -r "$checkout/tests" "$work/tests"
cp "$here/harness_conftest.py" "$work/conftest.py"
printf '[pytest]\nasyncio_default_fixture_loop_scope = function\n' > "$work/pytest.ini"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q -e "$repo[redis]" pytest pytest-asyncio prometheus_client

if ! (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
    redis-server --port 6379 --bind 127.0.0.1 --save "" --appendonly no --dir "$work" \
        > "$work/redis.log" 2>&1 &
    redis_pid=$!
    for _ in $(seq 50); do redis-cli -p 6379 ping > /dev/null 2>&1 && break; sleep 0.1; done
fi

cd "$work"
for mode in plain fresh-registry fresh-registry+as_given; do
    fresh=0; names=total
    [[ $mode == fresh-registry* ]] && fresh=1
    [[ $mode == *as_given ]] && names=as_given
    HARNESS_FRESH_REGISTRY=$fresh PYTHEUS_COUNTER_NAMES=$names \
        "$work/venv/bin/pytest" tests -q -p no:cacheprovider -rA > "$work/$mode.txt" 2>&1 || true
    echo "== $mode: $(tail -1 "$work/$mode.txt")"
    "$work/venv/bin/python" "$here/classify.py" "$work" "$work/$mode.txt"
done
