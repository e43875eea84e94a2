"""A small load generator, run as a process of its own: steady GETs to one loopback port.

::

    python -m tests.hardening.loadgen --port 8000 --path /fast/ --rate 100 --threads 4 \\
        --duration 30 --max-requests 5000 --out results.json

Each thread sends one request at a time on a connection of its own (``Connection: close``,
so that requests spread over a server's workers), paced so that together they send
``--rate`` requests per second; a thread that falls behind sends at once (the server is
saturated, which the latencies will show). It stops at the first of: ``--duration``
seconds, ``--max-requests`` requests, or end of file on its standard input (how a test
says "stop now"). Then it writes every request as ``[start, seconds, status, error]`` to
``--out``: ``start`` on the ``time.monotonic()`` clock, which on Linux is the same for every
process, so the test can line requests up with the faults it caused; ``status`` is -1 and
``error`` says why when there was no HTTP answer.

Only 127.0.0.1 is ever contacted: there is no option for a host.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
from pathlib import Path

HOST = "127.0.0.1"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/")
    parser.add_argument(
        "--rate", type=float, default=100.0, help="requests per second, all threads"
    )
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds, at most")
    parser.add_argument("--max-requests", type=int, default=100_000)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    stop = threading.Event()
    lock = threading.Lock()
    results: list[list[object]] = []
    interval = args.threads / args.rate if args.rate > 0 else 0.0
    end = time.monotonic() + args.duration

    def worker(offset: float) -> None:
        next_at = time.monotonic() + offset
        while not stop.is_set():
            now = time.monotonic()
            if now >= end:
                break
            # Pacing, not waiting for luck: the next request is due then.
            if next_at > now and stop.wait(next_at - now):
                break
            with lock:
                if len(results) >= args.max_requests:
                    break
                entry: list[object] = [0.0, 0.0, -1, ""]
                results.append(entry)
            start = time.monotonic()
            entry[0] = start
            conn = http.client.HTTPConnection(HOST, args.port, timeout=args.timeout)
            try:
                conn.request("GET", args.path, headers={"Connection": "close"})
                response = conn.getresponse()
                response.read()
                entry[2] = response.status
            except OSError as exc:  # refused, reset, timed out
                entry[3] = f"{type(exc).__name__}: {exc}"
            except http.client.HTTPException as exc:  # e.g. RemoteDisconnected
                entry[3] = f"{type(exc).__name__}: {exc}"
            finally:
                conn.close()
            entry[1] = time.monotonic() - start
            next_at = max(next_at + interval, time.monotonic() - interval)

    threads = [
        threading.Thread(target=worker, args=(i * interval / args.threads,), daemon=True)
        for i in range(args.threads)
    ]
    for t in threads:
        t.start()

    def watch_stdin() -> None:
        sys.stdin.read()  # returns at end of file: the test closed our stdin
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    for t in threads:
        t.join()
    args.out.write_text(json.dumps({"requests": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
