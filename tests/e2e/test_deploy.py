"""docker-compose.yaml, prometheus.yml and the Dockerfile agree with each other and with the demo.

No Docker engine runs here, so the files are checked rather than run: promtool validates the
Prometheus config, and the services, ports, scrape target, Redis address and environment
are compared across the three files and the demo's settings. The container's entry point
and the demo's settings under the container's environment are run for real.
"""

from __future__ import annotations

import json
import re
import shlex
import stat
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from tests.e2e.helpers import ROOT, demo_env, django_shell, manage
from tests.servers import free_port

COMPOSE = ROOT / "docker-compose.yaml"
PROMETHEUS = ROOT / "prometheus.yml"
DOCKERFILE = ROOT / "Dockerfile"
SETTINGS = ROOT / "demo_project" / "settings.py"


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def prometheus_config() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(PROMETHEUS.read_text())
    return data


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (INSTRUCTION, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            instruction, _, args = line.partition(" ")
            out.append((instruction.upper(), args.strip()))
    return out


def instruction(name: str) -> list[str]:
    return [args for instr, args in dockerfile() if instr == name]


def dockerfile_env() -> dict[str, str]:
    env = {}
    for args in instruction("ENV"):
        for item in shlex.split(args):
            key, _, value = item.partition("=")
            env[key] = value
    return env


def published(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    """A service's published ports as (host address, host port, container port)."""
    out = []
    for spec in service.get("ports", []):
        assert isinstance(spec, str), f"use the short syntax 'ip:host:container', not {spec!r}"
        parts = spec.split(":")
        assert len(parts) == 3, f"port {spec!r} must name the host address: '127.0.0.1:{spec}'"
        out.append((parts[0], int(parts[1]), int(parts[2].split("/")[0])))
    return out


def demo_scrape_target() -> tuple[str, int]:
    jobs = {job["job_name"]: job for job in prometheus_config()["scrape_configs"]}
    targets = [t for sc in jobs["demo"]["static_configs"] for t in sc["targets"]]
    assert len(targets) == 1, targets
    host, _, port = targets[0].rpartition(":")
    return host, int(port)


def gunicorn_port() -> int:
    cmd = json.loads(instruction("CMD")[-1])
    assert cmd[0] == "gunicorn", cmd
    bind = cmd[cmd.index("--bind") + 1]
    host, _, port = bind.rpartition(":")
    assert host == "0.0.0.0", "inside a container, gunicorn must listen on every interface"
    return int(port)


def test_prometheus_config_is_valid(promtool: str) -> None:
    result = subprocess.run(
        [promtool, "check", "config", str(PROMETHEUS)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_services() -> None:
    assert set(compose()["services"]) == {"redis", "demo", "prometheus", "grafana"}


def test_ports_are_published_on_loopback_only() -> None:
    for name, service in compose()["services"].items():
        for address, _, _ in published(service):
            assert address == "127.0.0.1", f"{name} publishes a port on {address}"


def test_prometheus_scrapes_the_demo_service_on_its_container_port() -> None:
    services = compose()["services"]
    host, port = demo_scrape_target()
    assert host in services, f"the scrape target {host!r} is no compose service"
    assert host == "demo"
    container_ports = {c for _, _, c in published(services["demo"])}
    assert port in container_ports
    assert port == gunicorn_port()
    assert instruction("EXPOSE") == [str(port)]
    assert prometheus_config()["scrape_configs"][0]["metrics_path"] == "/metrics"


def test_prometheus_service_reads_this_config() -> None:
    service = compose()["services"]["prometheus"]
    flags = dict(arg.lstrip("-").split("=", 1) for arg in service["command"])
    mounts = {}
    for volume in service["volumes"]:
        source, target, *_ = volume.split(":")
        mounts[target] = source
    assert (ROOT / mounts[flags["config.file"]]).resolve() == PROMETHEUS.resolve()
    assert {c for _, _, c in published(service)} == {9090}
    assert flags["web.listen-address"].endswith(":9090")


def test_demo_uses_the_redis_service() -> None:
    services = compose()["services"]
    env = services["demo"]["environment"]
    url = urlsplit(env["PYTHEUS_REDIS_URL"])
    assert url.scheme == "redis"
    assert url.hostname in services
    assert url.hostname == "redis"
    redis_command = services["redis"]["command"]
    redis_port = (
        int(redis_command[redis_command.index("--port") + 1]) if "--port" in redis_command else 6379
    )
    assert url.port == redis_port
    assert "redis" in services["demo"]["depends_on"]


def test_demo_allows_the_host_prometheus_asks_for() -> None:
    host, _ = demo_scrape_target()
    allowed = compose()["services"]["demo"]["environment"]["DEMO_ALLOWED_HOSTS"].split(",")
    assert host in allowed


def test_every_variable_given_to_the_demo_is_one_its_settings_read() -> None:
    settings = SETTINGS.read_text()
    given = {*compose()["services"]["demo"]["environment"], *dockerfile_env()}
    given -= {"PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PIP_NO_CACHE_DIR"}
    given -= {"PIP_DISABLE_PIP_VERSION_CHECK"}
    for name in given:
        assert f'"{name}"' in settings, f"{name} is set for the container but never read"


def test_dockerfile_copies_what_exists_and_runs_the_demo() -> None:
    for args in instruction("COPY"):
        *sources, _ = args.split()
        for source in sources:
            assert (ROOT / source).exists(), source
    entrypoint = json.loads(instruction("ENTRYPOINT")[-1])
    script = ROOT / entrypoint[0]
    assert script.exists()
    assert script.stat().st_mode & stat.S_IXUSR, f"{script} is not executable"
    cmd = json.loads(instruction("CMD")[-1])
    module = cmd[1].split(":")[0]
    assert (ROOT / (module.replace(".", "/") + ".py")).exists(), module
    assert int(cmd[cmd.index("--workers") + 1]) > 1
    assert compose()["services"]["demo"]["build"] == "."


def container_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The demo container's environment (Dockerfile ENV, then compose), here."""
    env = {**dockerfile_env(), **compose()["services"]["demo"]["environment"]}
    assert env.pop("DEMO_DB_PATH").startswith("/app/")  # a path in the image; here, tmp_path
    env.update(extra)
    return demo_env(tmp_path / "demo.sqlite3", **env)


def test_entrypoint_prepares_the_database_and_a_secret_key(tmp_path: Path) -> None:
    # The Redis address is never contacted by set-up: point it at a closed loopback port.
    env = container_env(tmp_path, PYTHEUS_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    assert "DEMO_SECRET_KEY" not in env
    probe = "import os, sys; print(len(os.environ['DEMO_SECRET_KEY']))"
    result = subprocess.run(
        [str(ROOT / "demo_project" / "docker-entrypoint.sh"), "python", "-c", probe],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert int(lines[-1]) >= 50  # the command ran, with a generated key
    assert re.search(r"user 'admin', password '[^']{12,}'", result.stdout), result.stdout
    assert (tmp_path / "demo.sqlite3").exists()


def test_settings_under_the_container_environment(tmp_path: Path) -> None:
    env = container_env(
        tmp_path,
        DEMO_SECRET_KEY="x" * 50,
        PYTHEUS_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
    )
    check = manage(env, "check")
    assert "System check identified no issues (0 silenced)." in check.stdout
    host, port = demo_scrape_target()
    seen = django_shell(
        env,
        f"""
import json
from django.conf import settings
from django.http.request import validate_host
from django.test import RequestFactory
from django_pytheus.access import check_access
from pytheus.backends import get_backend

def allowed(ip):
    request = RequestFactory().get("/metrics", REMOTE_ADDR=ip, HTTP_HOST="{host}:{port}")
    return check_access(request) is None

print(json.dumps({{
    "debug": settings.DEBUG,
    "host": validate_host("{host}", settings.ALLOWED_HOSTS),
    "backend": type(get_backend()).__name__,
    "cache": settings.CACHES["default"]["BACKEND"],
    "docker_network": allowed("172.18.0.5"),
    "loopback": allowed("127.0.0.1"),
    "public": allowed("203.0.113.7"),
    "static": settings.SERVE_STATIC,
}}))
""",
    )
    assert seen == {
        "debug": False,
        "host": True,
        "backend": "MultiProcessRedisBackend",
        "cache": "django_redis.cache.RedisCache",
        "docker_network": True,
        "loopback": True,
        "public": False,
        "static": True,
    }


def test_debug_off_refuses_the_development_secret_key(tmp_path: Path) -> None:
    result = manage(demo_env(tmp_path / "demo.sqlite3", DEMO_DEBUG="0"), "check", check=False)
    assert result.returncode != 0
    assert "DEMO_DEBUG=0 needs a secret key of its own" in result.stderr
