"""The test infrastructure itself: real redis-servers and promtool behave as the suite assumes."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from tests import servers
from tests.servers import LOOPBACK, RedisServer, ServerError, free_port, promtool_check_metrics

VALID_EXPOSITION = "# HELP x_total d\n# TYPE x_total counter\nx_total 1\n"


def test_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_redis_server_answers_raw_ping(redis_server: RedisServer) -> None:
    assert redis_server.host == "127.0.0.1"
    assert redis_server.port != 6379
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert redis_server.process is not None
    assert redis_server.pid == redis_server.process.pid
    assert redis_server.command("PING") == b"+PONG"


def test_redis_server_set_get_with_redis_py(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url, socket_timeout=5)
    try:
        assert client.set("infrastructure:key", "value")
        assert client.get("infrastructure:key") == b"value"
        redis_server.flushall()
        assert client.get("infrastructure:key") is None
    finally:
        client.close()


def test_redis_server_persists_nothing_by_default(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url, socket_timeout=5)
    try:
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
        assert client.config_get("bind") == {"bind": "127.0.0.1"}
    finally:
        client.close()


def test_redis_tests_get_the_redis_marker(request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("redis") is None
    items = [i for i in request.session.items if i.name == "test_redis_server_answers_raw_ping"]
    assert items
    assert all(i.get_closest_marker("redis") is not None for i in items)


def test_pause_and_resume(redis_server_factory: Callable[..., RedisServer]) -> None:
    server = redis_server_factory()
    server.pause()
    assert server.paused
    started = time.monotonic()
    assert not server.ping(timeout=0.3)
    assert time.monotonic() - started >= 0.25  # timed out, rather than refused
    server.resume()
    server.wait_until_ready(timeout=5)
    assert server.command("PING") == b"+PONG"


def test_stop_while_paused(redis_server_factory: Callable[..., RedisServer]) -> None:
    server = redis_server_factory()
    server.pause()
    server.stop()
    assert not server.running
    assert server.process is not None
    assert server.process.returncode == 0


def test_restart_keeps_port_and_directory(redis_server_factory: Callable[..., RedisServer]) -> None:
    server = redis_server_factory()
    port, directory, first_pid = server.port, server.directory, server.pid
    server.restart()
    assert (server.port, server.directory) == (port, directory)
    assert server.pid != first_pid
    assert server.ping()


def test_data_survives_kill_with_appendonly(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    server = redis_server_factory(appendonly=True, extra_args=["--appendfsync", "always"])
    client = redis.Redis.from_url(server.url, socket_timeout=5)
    try:
        client.set("survivor", "1")
        server.kill()
        assert not server.running
        with pytest.raises(redis.ConnectionError):
            client.get("survivor")
        server.start()
        assert client.get("survivor") == b"1"
    finally:
        client.close()


def test_data_is_lost_on_restart_without_persistence(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    server = redis_server_factory()
    server.command("SET", "ephemeral", "1")
    server.restart()
    assert server.command("EXISTS", "ephemeral") == b":0"


def test_start_failure_reports_the_log(tmp_path_factory: pytest.TempPathFactory) -> None:
    server = RedisServer(tmp_path_factory.mktemp("bad"), extra_args=["--no-such-option", "1"])
    with pytest.raises(ServerError, match="exited with code") as excinfo:
        server.start()
    assert "no-such-option" in str(excinfo.value)
    assert not server.running


def test_promtool_fixture(promtool: str) -> None:
    assert promtool.endswith("promtool")


def test_promtool_accepts_valid_exposition() -> None:
    promtool_check_metrics(VALID_EXPOSITION)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("x_total{ 1\n", "parsing error"),
        ("# HELP x_total d\n# TYPE x_total counter\nx_total 1", "parsing error"),
        ('# HELP g d\n# TYPE g gauge\ng{a="x\\y"} 1\n', "invalid escape"),
        (VALID_EXPOSITION * 2, "second HELP"),
    ],
    ids=["bad-label", "no-final-newline", "bad-escape", "family-twice"],
)
def test_promtool_rejects_malformed_exposition(text: str, problem: str) -> None:
    with pytest.raises(AssertionError, match=problem):
        promtool_check_metrics(text)
    with pytest.raises(AssertionError, match=problem):
        promtool_check_metrics(text, lint=False)


def test_promtool_lint_problems_fail_unless_lint_is_off() -> None:
    text = "# HELP x d\n# TYPE x counter\nx 1\n"
    with pytest.raises(AssertionError, match='should have "_total" suffix'):
        promtool_check_metrics(text)
    promtool_check_metrics(text, lint=False)


def test_promtool_accepts_a_histogram() -> None:
    promtool_check_metrics(
        "# HELP d_seconds Duration.\n"
        "# TYPE d_seconds histogram\n"
        'd_seconds_bucket{le="0.1"} 1\n'
        'd_seconds_bucket{le="+Inf"} 2\n'
        "d_seconds_sum 0.5\n"
        "d_seconds_count 2\n"
    )


def test_missing_program_fails_rather_than_skips(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path_factory.mktemp("empty-path")))
    with pytest.raises(pytest.fail.Exception, match="Run `make test`"):
        RedisServer(tmp_path_factory.mktemp("never"))
    with pytest.raises(pytest.fail.Exception, match="Run `make test`"):
        promtool_check_metrics(VALID_EXPOSITION)


def test_a_port_taken_before_the_server_binds_it_is_exchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """free_port() returns a port that was free a moment ago; another process may bind it
    first (on a machine running several suites, it happens). The server then starts on
    another port, unless the port was the caller's choice."""
    taken = socket.create_server((LOOPBACK, 0))
    port = taken.getsockname()[1]
    ports = iter([port])
    real = servers.free_port
    monkeypatch.setattr(servers, "free_port", lambda host=LOOPBACK: next(ports, None) or real())
    try:
        server = RedisServer(tmp_path / "a").start()
        try:
            assert server.port != port
            assert server.ping()
        finally:
            server.stop()
        with pytest.raises(ServerError, match="exited"):
            RedisServer(tmp_path / "b", port=port).start()
    finally:
        taken.close()


def test_a_cluster_bus_port_taken_before_the_node_binds_it_is_exchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cluster node listens on two ports; the bus port is as likely to be taken by another
    process's connection as the client port (a CI run once failed on it), and is exchanged the
    same way."""
    taken = socket.create_server((LOOPBACK, 0))
    bus = taken.getsockname()[1]
    real = servers.free_port
    ports = iter([real(), bus])  # the client port is free, the bus port is taken
    monkeypatch.setattr(servers, "free_port", lambda host=LOOPBACK: next(ports, None) or real())
    try:
        server = RedisServer(
            tmp_path / "node", cluster_bus=True, extra_args=["--cluster-enabled", "yes"]
        )
        assert server.bus_port == bus
        server.start()
        try:
            assert server.bus_port != bus
            assert server.ping()
            assert "Address already in use" in server.log_text()
        finally:
            server.stop()
    finally:
        taken.close()
