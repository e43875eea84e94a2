"""What the Redis backend costs a process that is not a web server (a Celery worker, a cron
job), and what a bridged prometheus_client series costs: flusher CPU and bytes per series.

    .venv/bin/python benchmarks/process_costs.py [--rounds 20] [--series 1000,10000]

Each case runs in a process of its own against a throwaway redis-server. It defines the
series and reports the CPU time of one flush (the flusher thread does one every
``flush_interval``, 1 s by default) when nothing changed (a heartbeat) and when every
series changed, averaged over ``--rounds``; then the bytes each series takes in Redis
(``MEMORY USAGE`` of its family's key, divided by the series) and in the process
(tracemalloc, the metric's objects and its flush state).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._redis_server import RedisServer

KINDS = ("counter", "histogram", "bridged-counter", "bridged-histogram")


def child(url: str, kind: str, series: int, rounds: int) -> dict[str, float]:
    import redis

    from pytheus.backends import load_backend
    from pytheus.backends.redis import MultiProcessRedisBackend
    from pytheus.backends.redis_keys import KeyLayout
    from pytheus.registry import CollectorRegistry, set_registry

    set_registry(CollectorRegistry())
    prefix = f"cost{kind.replace('-', '')}"
    backend = load_backend(MultiProcessRedisBackend, {"url": url, "prefix": prefix})
    assert isinstance(backend, MultiProcessRedisBackend)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    if kind.startswith("bridged"):
        import prometheus_client as pc

        from pytheus.bridges import prometheus_client as bridge

        source = pc.CollectorRegistry()
        if kind == "bridged-counter":
            metric: object = pc.Counter("cost", "Cost.", ["n"], registry=source)
        else:
            metric = pc.Histogram("cost_seconds", "Cost.", ["n"], registry=source)
        children = [metric.labels(str(i)) for i in range(series)]  # type: ignore[attr-defined]
        bridge.register(source)
    else:
        from pytheus.metrics import Counter, Histogram

        if kind == "counter":
            m: object = Counter("cost", "Cost.", ["n"])
        else:
            m = Histogram("cost_seconds", "Cost.", ["n"])
        children = [m.labels(n=str(i)) for i in range(series)]  # type: ignore[attr-defined]

    def touch() -> None:
        for c in children:
            if hasattr(c, "inc"):
                c.inc()
            else:
                c.observe(0.3)

    touch()
    assert backend.flush()
    memory = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    # A flush that sends nothing (a heartbeat: every flush_interval, default 1 s), and
    # one after every series changed: the flusher's CPU time, timed around the call
    # (it runs in the caller's thread), its wait on Redis excluded.
    idle = busy = 0.0
    for _ in range(rounds):
        t = time.thread_time()
        assert backend.flush()
        idle += time.thread_time() - t
        touch()
        t = time.thread_time()
        assert backend.flush()
        busy += time.thread_time() - t
    client = redis.Redis.from_url(url)
    keys = KeyLayout(prefix)
    used = sum(
        client.memory_usage(k, samples=0) or 0
        for k in client.scan_iter(match=keys.family_pattern())
        if keys.family_name(k.decode()) is not None
    )
    return {
        "idle": idle / rounds,
        "busy": busy / rounds,
        "redis_bytes": used,
        "process_bytes": memory,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--series", default="1000,10000")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        url, kind, series, rounds = args.child
        print(json.dumps(child(url, kind, int(series), int(rounds))))
        return
    import redis

    counts = [int(n) for n in args.series.split(",")]
    print(
        f"{'case':<20}{'series':>8}{'idle flush':>12}{'busy flush':>12}"
        f"{'Redis B/series':>16}{'process B/series':>18}"
    )
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp)) as server:
        for kind in KINDS:
            for n in counts:
                out = subprocess.run(
                    [sys.executable, __file__, "--child", server.url, kind, str(n),
                     str(args.rounds)],
                    capture_output=True, text=True, check=True, timeout=600,
                )  # fmt: skip
                r = json.loads(out.stdout.strip().splitlines()[-1])
                redis.Redis.from_url(server.url).flushall()
                print(
                    f"{kind:<20}{n:>8}{r['idle'] * 1000:>10.2f}ms{r['busy'] * 1000:>10.2f}ms"
                    f"{r['redis_bytes'] / n:>16.0f}{r['process_bytes'] / n:>18.0f}"
                )


if __name__ == "__main__":
    main()
