"""What waiting for a replica (``wait_replicas``) costs the Redis backend's flusher.

    .venv/bin/python benchmarks/replication_wait.py [--rounds 200] [--series 100,1000]
                                                    [--repeats 3]

Starts a throwaway primary and a replica of it (``--replicaof``) on loopback, then, in a
process of its own per case, changes every one of ``--series`` counter series and flushes,
``--rounds`` times, with ``wait_replicas`` 0 (no WAIT) and 1 (the flush's pipeline ends
with ``WAIT 1 <ms>``, as the flusher thread sends it), each case ``--repeats`` times,
alternated. It prints the flush's wall time
(median and 99th percentile: the flusher thread's time, which the application never waits
for) and its CPU time in the process, and the difference WAIT makes. A replica that does
not answer costs each flush up to the WAIT's bound instead (a quarter of
``flush_interval`` at most), which is configuration, not measurement.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._redis_server import LOOPBACK, RedisServer


def child(url: str, wait: int, series: int, rounds: int) -> dict[str, list[float]]:
    from pytheus.backends import load_backend
    from pytheus.backends.redis import MultiProcessRedisBackend
    from pytheus.metrics import Counter
    from pytheus.registry import CollectorRegistry, set_registry

    set_registry(CollectorRegistry())
    backend = load_backend(
        MultiProcessRedisBackend,
        # No background flush during the measurement: each one is timed here.
        {"url": url, "prefix": f"wait{wait}", "wait_replicas": wait, "flush_interval": 3600},
    )
    assert isinstance(backend, MultiProcessRedisBackend)
    counter = Counter("cost", "Cost.", ["n"])
    children = [counter.labels(n=str(i)) for i in range(series)]
    wall: list[float] = []
    cpu: list[float] = []
    for i in range(rounds + 5):
        for c in children:
            c.inc()
        t, c0 = time.perf_counter(), time.thread_time()
        assert backend.flush()
        if i >= 5:  # the first flushes define the family and load the scripts
            wall.append(time.perf_counter() - t)
            cpu.append(time.thread_time() - c0)
    with backend._flush_lock:
        assert not backend._writer.unconfirmed or not wait, "WAIT did not confirm"
    return {"wall": wall, "cpu": cpu}


def _p99(values: list[float]) -> float:
    return sorted(values)[min(len(values) - 1, int(len(values) * 0.99))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--series", default="100,1000")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each case, alternated")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        url, wait, series, rounds = args.child
        print(json.dumps(child(url, int(wait), int(series), int(rounds))))
        return
    counts = [int(n) for n in args.series.split(",")]
    print(
        f"{'series':>8}{'wait_replicas':>15}{'flush median':>14}{'flush p99':>12}{'flush CPU':>12}"
    )
    figures = []
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp) / "primary") as primary:
        replica_args = ["--replicaof", LOOPBACK, str(primary.port)]
        with RedisServer(Path(tmp) / "replica", replica_args):
            for n in counts:
                runs: dict[int, list[dict[str, list[float]]]] = {0: [], 1: []}
                # Alternated, so that a machine whose load drifts weighs on both alike.
                for _ in range(args.repeats):
                    for wait in (0, 1):
                        out = subprocess.run(
                            [sys.executable, __file__, "--child", primary.url, str(wait),
                             str(n), str(args.rounds)],
                            capture_output=True, text=True, check=True, timeout=600,
                        )  # fmt: skip
                        runs[wait].append(json.loads(out.stdout.strip().splitlines()[-1]))
                medians = {}
                for wait, results in runs.items():
                    wall = [t for r in results for t in r["wall"]]
                    cpu = [t for r in results for t in r["cpu"]]
                    # The median of the runs' medians: one unlucky run does not decide.
                    median = statistics.median(statistics.median(r["wall"]) for r in results)
                    medians[wait] = median
                    row = {
                        "series": n,
                        "wait_replicas": wait,
                        "median_ms": median * 1000,
                        "p99_ms": _p99(wall) * 1000,
                        "cpu_ms": statistics.mean(cpu) * 1000,
                    }
                    figures.append(row)
                    print(
                        f"{n:>8}{wait:>15}{row['median_ms']:>12.3f}ms{row['p99_ms']:>10.3f}ms"
                        f"{row['cpu_ms']:>10.3f}ms"
                    )
                extra = (medians[1] - medians[0]) * 1000
                print(f"{'':>8}{'WAIT adds':>15}{extra:>12.3f}ms (median wall time)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
