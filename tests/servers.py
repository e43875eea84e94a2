"""Real servers and programs for the tests: redis-server on a free loopback port, promtool.

The programs come from Debian packages that ``make test`` installs
(``scripts/install-system-deps.sh``). A missing program fails the test that needs it, never
skips it: a suite that quietly skips its Redis tests would pass without testing the Redis backend.

Fault tests drive a server of their own through its whole life::

    server = RedisServer(tmp_path, appendonly=True).start()
    server.pause()  # SIGSTOP: connections are accepted, nothing is answered
    server.resume()  # SIGCONT
    server.kill()  # SIGKILL: a crash, no final save
    server.start()  # the same port, directory and files as before
    server.stop()
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import pytest

__all__ = [
    "LOOPBACK",
    "RedisCluster",
    "RedisServer",
    "SentinelServer",
    "ServerError",
    "free_port",
    "promtool_check_metrics",
    "require_program",
]

LOOPBACK = "127.0.0.1"

# How long a server may take to answer its first PING. redis-server starts in milliseconds; the
# margin is for a loaded CI machine, and for loading a large dump or append-only file on restart.
START_TIMEOUT = 10.0

# How long a server may take to exit after SIGTERM before it is killed.
STOP_TIMEOUT = 10.0


class ServerError(RuntimeError):
    """A test server did not start, answer or stop as it should; the message holds its log."""


def require_program(name: str) -> str:
    """Return the path of the program ``name``, or fail the calling test if it is not on PATH."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name!r} is not on PATH. Run `make test`, which installs it "
            "(scripts/install-system-deps.sh installs the Debian packages redis-server and "
            "prometheus).",
            pytrace=False,
        )
    return path


_random = random.SystemRandom()  # not the global generator, which a test may seed


def _ephemeral_low() -> int:
    """Where the kernel's ephemeral range (outgoing connections' local ports) starts."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on ``host`` that was free a moment ago.

    The port is drawn below the kernel's ephemeral range, which every outgoing connection
    takes its local port from: a port the kernel hands out may be taken by a client's
    connection before our server binds it (a CI run failed so). Only another listener can
    take ours, and the servers here exchange a port taken at their first start.
    """
    ephemeral_low = _ephemeral_low()
    low, high = max(1024, ephemeral_low - 12000), ephemeral_low - 1
    for _ in range(200):
        port = _random.randint(low, high)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # a crowded machine
        sock.bind((host, 0))
        chosen: int = sock.getsockname()[1]
        return chosen


def _encode_command(*args: str | bytes) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else arg
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class RedisServer:
    """One ``redis-server`` process on ``127.0.0.1``, keeping its files in ``directory``.

    The port is chosen free when the server is created and kept across :meth:`restart`, :meth:`kill`
    followed by :meth:`start`, and so on, as are the directory, the log and the data files. By
    default nothing is persisted (``save ""``, ``appendonly no``); pass ``save="1 1"`` or
    ``appendonly=True`` for fault tests that need the data to survive a restart, and
    ``extra_args`` for any other ``redis-server`` option (``["--maxmemory", "1mb"]``), and
    ``cluster_bus=True`` for a cluster node's second port (``--cluster-port``), chosen the same way.

    Every signal goes to this server's own pid, never to a process found by name.
    """

    host = LOOPBACK

    def __init__(
        self,
        directory: Path,
        port: int | None = None,
        *,
        save: str = "",
        appendonly: bool = False,
        extra_args: tuple[str, ...] | list[str] = (),
        cluster_bus: bool = False,
    ) -> None:
        self.executable = require_program("redis-server")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        # A port of the kernel's choosing may be taken by another process (another suite's
        # connection) before the server binds it: such a port is exchanged at the first start.
        self._port_chosen_here = port is None
        self.port = port if port is not None else free_port()
        # A cluster node also listens on a bus port: chosen, and exchanged, like the port.
        self.bus_port = free_port() if cluster_bus else None
        self.log_path = self.directory / "redis-server.log"
        self.save = save
        self.appendonly = appendonly
        self.extra_args = list(extra_args)
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._paused = False

    # -- addresses ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise ServerError("The redis-server has not been started.")
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def paused(self) -> bool:
        return self._paused

    def command_line(self) -> list[str]:
        return [
            self.executable,
            "--port", str(self.port),
            "--bind", self.host,
            "--dir", str(self.directory),
            "--save", self.save,
            "--appendonly", "yes" if self.appendonly else "no",
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--logfile", "",  # to stdout, which goes to self.log_path
            *(["--cluster-port", str(self.bus_port)] if self.bus_port is not None else []),
            *self.extra_args,
        ]  # fmt: skip

    # -- life cycle ---------------------------------------------------------------------------

    def start(self, timeout: float = START_TIMEOUT) -> Self:
        """Start the server and return once it answers PING; raise :class:`ServerError` if not."""
        for _ in range(3):
            try:
                return self._start(timeout)
            except ServerError:
                this_start = self.log_text().rsplit("--- starting:", 1)[-1]
                if not (self._port_chosen_here and "Address already in use" in this_start):
                    raise
                self.port = free_port()
                if self.bus_port is not None:
                    self.bus_port = free_port()
        return self._start(timeout)

    def _start(self, timeout: float) -> Self:
        if self.running:
            raise ServerError(f"redis-server {self.pid} on port {self.port} is already running.")
        self._close_log()
        self._log = self.log_path.open("ab")
        self._log.write(f"--- starting: {' '.join(self.command_line())}\n".encode())
        self._log.flush()
        self.process = subprocess.Popen(
            self.command_line(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.directory,
        )
        self._paused = False
        try:
            self.wait_until_ready(timeout)
        except BaseException:
            self.kill()
            raise
        self._port_chosen_here = False  # from now on the port is the server's: kept
        return self

    def wait_until_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Poll with PING until the server answers, it exits, or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.running:
                raise ServerError(
                    f"redis-server on port {self.port} exited with code "
                    f"{self.process.returncode if self.process else None} before answering PING."
                    f"\n{self.log_text()}"
                )
            if self.ping(timeout=0.5):
                return
            if time.monotonic() >= deadline:
                raise ServerError(
                    f"redis-server {self.pid} on port {self.port} did not answer PING within "
                    f"{timeout} s.\n{self.log_text()}"
                )
            time.sleep(0.02)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Ask the server to shut down (SIGTERM), and kill it if it has not exited in time."""
        if self.process is None:
            return
        if self.process.poll() is None:
            if self._paused:
                self.resume()  # a stopped process cannot act on SIGTERM
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        self._paused = False
        self._close_log()

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would: no final save, no goodbye."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT)
        self._paused = False
        self._close_log()

    def restart(self, timeout: float = START_TIMEOUT) -> Self:
        """Stop the server and start it again on the same port, in the same directory."""
        self.stop()
        return self.start(timeout)

    def pause(self) -> None:
        """Freeze the server (SIGSTOP). The kernel still accepts connections; nothing answers."""
        if not self.running:
            raise ServerError(f"Cannot pause redis-server on port {self.port}: it is not running.")
        os.kill(self.pid, signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """Let a paused server run again (SIGCONT)."""
        if not self.running:
            raise ServerError(f"Cannot resume redis-server on port {self.port}: it is not running.")
        os.kill(self.pid, signal.SIGCONT)
        self._paused = False

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self if self.running else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- talking to it ------------------------------------------------------------------------

    def command(self, *args: str | bytes, timeout: float = 2.0) -> bytes:
        """Send one command over a fresh connection and return the first line of the reply.

        Enough for PING, FLUSHALL, CONFIG SET and the like without a client library; raises
        ``OSError`` (``TimeoutError`` included) when the server does not answer in time.
        """
        with socket.create_connection((self.host, self.port), timeout=timeout) as sock:
            sock.sendall(_encode_command(*args))
            reply = b""
            while not reply.endswith(b"\r\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    raise ConnectionError(f"redis-server on port {self.port} closed the connection")
                reply += chunk
            return reply.split(b"\r\n", 1)[0]

    def ping(self, timeout: float = 1.0) -> bool:
        """Whether the server answers PING with PONG within ``timeout`` seconds."""
        try:
            return self.command("PING", timeout=timeout) == b"+PONG"
        except OSError:
            return False

    def flushall(self) -> None:
        """Delete every key in every database: a clean slate for the next test."""
        reply = self.command("FLUSHALL")
        if reply != b"+OK":
            raise ServerError(f"FLUSHALL answered {reply!r}")

    def log_text(self, max_chars: int = 5000) -> str:
        """The end of the server's log, for error messages."""
        if self._log is not None:
            self._log.flush()
        with contextlib.suppress(FileNotFoundError):
            text = self.log_path.read_text(errors="replace")
            return f"--- {self.log_path} (last {max_chars} characters):\n{text[-max_chars:]}"
        return f"--- {self.log_path} does not exist"

    def __repr__(self) -> str:
        state = "paused" if self._paused else "running" if self.running else "stopped"
        return f"<RedisServer {self.url} {state}>"


class SentinelServer(RedisServer):
    """A Redis Sentinel (``redis-server <conf> --sentinel``) watching one primary.

    Sentinel rewrites its configuration file as it learns the group, so each gets a file of
    its own in its directory. ``down_after_ms`` and ``failover_timeout_ms`` are short so that
    a failover completes in seconds; quorum 2 of the usual three sentinels.
    """

    def __init__(
        self,
        directory: Path,
        *,
        service: str,
        primary_port: int,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 5000,
    ) -> None:
        super().__init__(directory)
        self.service = service
        self.primary_port = primary_port
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.config_path = self.directory / "sentinel.conf"

    def command_line(self) -> list[str]:
        if not self.config_path.exists():  # kept across restarts: sentinel's own state
            s = self.service
            self.config_path.write_text(
                f"sentinel monitor {s} {self.host} {self.primary_port} 2\n"
                f"sentinel down-after-milliseconds {s} {self.down_after_ms}\n"
                f"sentinel failover-timeout {s} {self.failover_timeout_ms}\n"
                f"sentinel parallel-syncs {s} 1\n"
            )
        return [
            self.executable,
            str(self.config_path),
            "--sentinel",
            "--port", str(self.port),
            "--bind", self.host,
            "--dir", str(self.directory),
            "--daemonize", "no",
            "--logfile", "",
        ]  # fmt: skip


def promtool_check_metrics(text: str, *, lint: bool = True) -> None:
    """Check an exposition in the text format (0.0.4) with ``promtool check metrics``.

    Raises ``AssertionError`` with promtool's report and the input when promtool objects.

    promtool 2.42 (Debian bookworm) parses the input, then lints it. Its exit code tells which:

    * 0: parsed, no lint problems.
    * 1: a parse error (``text format parsing error in line 3: ...``): bad escapes, a second
      HELP or TYPE line for a name, duplicate label names, a missing final newline, ...
    * 3: parsed, but with lint problems, one per line on stderr: a counter without the
      ``_total`` suffix, a non-counter with it, no HELP text, a non-base unit
      (``_milliseconds``), a ``le`` label outside a histogram, ``quantile`` outside a summary,
      a colon in a metric name.

    With ``lint=True`` (the default) both count as failures; ``lint=False`` accepts lint problems
    and fails only on parse errors. Note what promtool does NOT check: duplicate series (the same
    name and labels twice), bucket order or cumulativeness of histograms, ``+Inf`` equal to
    ``_count``. It parses only the Prometheus text format: OpenMetrics output (a counter family
    ``x`` with samples ``x_total``) draws lint errors, and ``# EOF`` is read as a comment; check
    OpenMetrics with prometheus_client's openmetrics parser instead.
    """
    promtool = require_program("promtool")
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=text.encode(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    if result.returncode == 0 or (not lint and result.returncode == 3):
        return
    report = (result.stderr + result.stdout).decode(errors="replace").strip()
    raise AssertionError(
        f"promtool check metrics exited with {result.returncode}:\n{report}\n--- input:\n{text}"
    )


class RedisCluster:
    """A Redis Cluster of ``primaries`` primaries, each with ``replicas`` replicas: Debian's
    ``redis-server`` in cluster mode on free loopback ports (client and bus), made with
    ``redis-cli --cluster create``. Each node is a :class:`RedisServer` in a directory of its
    own, so a test can kill, pause or restart one by its own pid."""

    def __init__(self, directory: Path, *, primaries: int = 3, replicas: int = 1) -> None:
        self.directory = Path(directory)
        self.primaries = primaries
        self.replicas = replicas
        self.nodes: list[RedisServer] = []
        for i in range(primaries * (1 + replicas)):
            node = RedisServer(
                self.directory / f"node{i}",
                cluster_bus=True,
                extra_args=[
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", "1000",
                    # A replica takes over however far behind it was: the tests count on
                    # our retries, not on Redis's replication being complete.
                    "--cluster-replica-validity-factor", "0",
                ],
            )  # fmt: skip
            self.nodes.append(node)

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def port(self) -> int:
        return self.nodes[0].port

    def start(self, timeout: float = 60.0) -> Self:
        try:
            return self._start(timeout)
        except BaseException:
            self.stop()  # the nodes already started, and their open logs, go with the failure
            raise

    def _start(self, timeout: float) -> Self:
        for node in self.nodes:
            node.start()
        cli = require_program("redis-cli")
        command = [cli, "--cluster", "create", *(f"{n.host}:{n.port}" for n in self.nodes)]
        command += ["--cluster-replicas", str(self.replicas), "--cluster-yes"]
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise ServerError(f"redis-cli --cluster create failed:\n{result.stdout}{result.stderr}")
        self.wait_until_ok(timeout)
        return self

    def info(self, node: RedisServer) -> dict[str, str]:
        """``CLUSTER INFO`` of one node, as a dict."""
        out = self.cli(node, "cluster", "info")
        return dict(line.split(":", 1) for line in out.split() if ":" in line)

    def roles(self) -> dict[str, list[RedisServer]]:
        """The running nodes by their role: "master" or "slave" (``INFO replication``)."""
        out: dict[str, list[RedisServer]] = {"master": [], "slave": []}
        for node in self.nodes:
            if node.running and not node.paused:
                role = self.cli(node, "info", "replication")
                for line in role.split():
                    if line.startswith("role:"):
                        out.setdefault(line[5:], []).append(node)
        return out

    def cli(self, node: RedisServer, *args: str) -> str:
        return subprocess.run(
            [require_program("redis-cli"), "-p", str(node.port), *args],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout

    def wait_until_ok(self, timeout: float = 60.0, *, replicated: bool = True) -> None:
        """Until every running node says the cluster is ok with every slot served (and,
        with ``replicated``, each primary has its replicas in sync)."""
        deadline = time.monotonic() + timeout
        while True:
            infos = [self.info(n) for n in self.nodes if n.running and not n.paused]
            ok = infos and all(
                i.get("cluster_state") == "ok" and i.get("cluster_slots_ok") == "16384"
                for i in infos
            )
            if ok and replicated:
                primaries = self.roles()["master"]
                ok = len(primaries) == self.primaries and all(
                    self.cli(p, "info", "replication").count("state=online") >= self.replicas
                    for p in primaries
                )
            if ok:
                return
            if time.monotonic() >= deadline:
                raise ServerError(f"The Redis Cluster is not ok after {timeout} s: {infos}")
            time.sleep(0.1)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
