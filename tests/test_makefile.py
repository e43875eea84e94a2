"""The first commands a new user types: ``make demo`` and ``make venv`` in a copy of the
project, with interpreters of chosen versions on ``PATH``.

The interpreters are stand-ins (:func:`fake_python`): small shell scripts that answer the
version question as a Python of that version does, make a "venv" whose ``bin/python`` is
another stand-in, play pip's part (printing what pip prints) and write down every way they
were called. So the tests see exactly what ``make`` asked of which interpreter, in a second,
offline, whatever Pythons the machine has; ``Makefile`` and ``scripts/`` are the real ones.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from tests.servers import LOOPBACK, free_port

ROOT = Path(__file__).resolve().parents[1]
COPIED = ("Makefile", "scripts", "pyproject.toml", "manage.py", "demo_project")
# What pip prints while it works, as the stand-in prints it (the real one prints a line per
# package it collects).
PIP_OUTPUT = (
    "Obtaining file:///project",
    "Collecting django>=5.2",
    "  Downloading django-5.2.8-py3-none-any.whl (8.3 MB)",
    "Collecting redis>=5",
    "Installing collected packages: redis, django, pytheus",
    "Successfully installed django-5.2.8 pytheus-0.1.0 redis-5.2.1",
)

FAKE_PYTHON = """#!/bin/bash
# A stand-in for Python {version}: see tests/test_makefile.py.
echo "$0 $*" >> {log}
case "$1" in
    -c) echo {version} ;;
    -m)
        case "$2" in
            venv) mkdir -p "$3/bin" && cp "$0" "$3/bin/python" ;;
            pip)
                printf '%s\\n' {pip_output}
                [ -z "${{FAKE_PIP_FAILS:-}}" ] || {{ echo "ERROR: ResolutionImpossible"; exit 1; }}
                ;;
            *) echo "unexpected: $*" >&2; exit 99 ;;
        esac
        ;;
    *) echo "unexpected: $*" >&2; exit 99 ;;
esac
"""


def fake_python(path: Path, version: str, log: Path) -> Path:
    """Write a stand-in for Python ``version`` at ``path``; it logs its calls to ``log``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        FAKE_PYTHON.format(
            version=version,
            log=shlex.quote(str(log)),
            pip_output=" ".join(shlex.quote(line) for line in PIP_OUTPUT),
        )
    )
    path.chmod(0o755)
    return path


class Project:
    """A copy of the project's make files and demo, with a ``bin`` of stand-ins first on PATH."""

    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path / "project"
        self.dir.mkdir()
        for name in COPIED:
            source = ROOT / name
            if source.is_dir():
                shutil.copytree(source, self.dir / name, ignore=shutil.ignore_patterns("*.sqlite3"))
            else:
                shutil.copy2(source, self.dir / name)
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        self.log = tmp_path / "calls.log"
        self.log.touch()
        self.db = tmp_path / "demo.sqlite3"

    @property
    def venv(self) -> Path:
        return self.dir / ".venv"

    def calls(self) -> list[str]:
        """Every call of a stand-in, as ``<program> <args>``."""
        return self.log.read_text().splitlines()

    def make(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        environ = {
            k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON", "DEMO_"))
        }
        environ.update(
            PATH=f"{self.bin}{os.pathsep}/usr/bin{os.pathsep}/bin",
            DEMO_DB_PATH=str(self.db),
            MAKEFLAGS="",
            **env,
        )
        return subprocess.run(
            ["make", "--no-print-directory", *args],
            cwd=self.dir,
            env=environ,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


def ours(stderr: str) -> list[str]:
    """The lines of stderr that are not make's own ``make: *** ... Error`` lines."""
    return [line for line in stderr.splitlines() if "***" not in line]


# --------------------------------------------------------------------------- the interpreter


def test_an_old_python_is_refused_before_anything_is_made(project: Project) -> None:
    fake_python(project.bin / "python3", "3.10.13", project.log)
    result = project.make("demo", f"DEMO_ADDR={LOOPBACK}:{free_port()}")
    assert result.returncode != 0
    [message] = ours(result.stderr)
    assert "Python 3.10.13" in message
    assert "3.11 or newer" in message
    assert "make demo PYTHON=" in message
    assert not project.venv.exists()
    assert not project.db.exists()
    # Asked its version, and nothing else: no venv, no pip backtracking for minutes.
    assert project.calls()
    assert all(" -c " in call for call in project.calls()), project.calls()


def test_a_missing_python_is_named(project: Project) -> None:
    result = project.make("venv", "PYTHON=python3.99")
    assert result.returncode != 0
    [message] = ours(result.stderr)
    assert "'python3.99' was not found" in message
    assert "make venv PYTHON=" in message
    assert not project.venv.exists()


def test_the_chosen_python_makes_the_venv_and_pip_shows_its_progress(project: Project) -> None:
    chosen = fake_python(project.bin / "python3.12", "3.12.4", project.log)
    fake_python(project.bin / "python3", "3.10.13", project.log)  # not used: PYTHON= wins
    result = project.make("venv", f"PYTHON={chosen.name}")
    assert result.returncode == 0, result.stderr
    assert f"creating .venv with {chosen.name} (Python 3.12.4)" in result.stdout
    # pip's progress, a line per package, instead of silence.
    assert "venv:   Collecting django>=5.2" in result.stdout
    assert "venv:   Successfully installed" in result.stdout
    assert (project.venv / ".installed").exists()
    assert "Downloading django" in (project.venv / "pip.log").read_text()  # all of it
    made = [c for c in project.calls() if " -m venv " in c]
    assert made == [f"{chosen} -m venv .venv"]
    assert [c for c in project.calls() if " -m pip install " in c]

    # Again: nothing to do, nothing said.
    before = len(project.calls())
    again = project.make("venv")
    assert again.returncode == 0
    assert again.stdout == ""
    assert not [c for c in project.calls()[before:] if " -m " in c]
    # A changed pyproject.toml: pip again.
    os.utime(project.dir / "pyproject.toml")
    (project.venv / ".installed").touch()
    os.utime(project.venv / ".installed", (0, 0))
    assert "venv:   Collecting django>=5.2" in project.make("venv").stdout


def test_a_venv_made_by_an_old_python_is_made_again(project: Project) -> None:
    fake_python(project.venv / "bin" / "python", "3.10.13", project.log)
    (project.venv / ".installed").touch()  # "installed": make alone would keep it
    python3 = fake_python(project.bin / "python3", "3.11.9", project.log)
    result = project.make("demo", f"DEMO_ADDR={LOOPBACK}:{free_port()}", FAKE_PIP_FAILS="1")
    assert (
        "making .venv again with python3 (Python 3.11.9): it was made by Python 3.10.13"
        in result.stdout
    )
    assert f"{python3} -m venv .venv" in project.calls()
    # The new venv's python runs pip (and fails here, visibly, before the demo starts).
    assert result.returncode != 0
    assert "ERROR: ResolutionImpossible" in result.stderr
    assert "pip install failed" in result.stderr
    assert not (project.venv / ".installed").exists()
    assert not project.db.exists()


def test_a_venv_of_another_version_than_the_chosen_one_is_made_again(project: Project) -> None:
    fake_python(project.venv / "bin" / "python", "3.11.9", project.log)
    (project.venv / ".installed").touch()
    fake_python(project.bin / "python3", "3.11.9", project.log)
    assert project.make("venv").stdout == ""  # suitable, and nothing else asked for
    chosen = fake_python(project.bin / "python3.13", "3.13.1", project.log)
    result = project.make("venv", "PYTHON=python3.13")
    assert result.returncode == 0, result.stderr
    assert "PYTHON=python3.13 is Python 3.13.1" in result.stdout
    assert f"{chosen} -m venv .venv" in project.calls()


# --------------------------------------------------------------------------- a second demo


class Listener:
    """A server on a free loopback port that accepts connections and keeps what it reads."""

    def __init__(self) -> None:
        self.sock = socket.create_server((LOOPBACK, 0))
        self.port: int = self.sock.getsockname()[1]
        self.received = b""
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.settimeout(2)
                try:
                    while chunk := conn.recv(65536):
                        self.received += chunk
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()
        self._thread.join(5)


def test_a_second_demo_stops_before_touching_anything(project: Project) -> None:
    """A demo already serves the address: one line, and no venv, database, traffic."""
    fake_python(project.bin / "python3", "3.11.9", project.log)
    running = Listener()
    try:
        result = project.make("demo", f"DEMO_ADDR={LOOPBACK}:{running.port}")
    finally:
        running.close()
    assert result.returncode != 0
    [message] = ours(result.stderr)
    assert f"{LOOPBACK}:{running.port} is already in use" in message
    assert f"make demo DEMO_ADDR={LOOPBACK}:" in message
    assert result.stdout == ""
    assert project.calls() == []  # no interpreter was even asked its version
    assert not project.venv.exists()
    assert not project.db.exists()
    assert running.received == b""  # looked at, not sent a request


def test_a_second_demo_in_the_project_itself(tmp_path: Path) -> None:
    """The same with the project's real venv and demo: the running one's metrics and
    database stay untouched (the second one used to migrate, seed and send it traffic)."""
    running = Listener()
    db = tmp_path / "demo.sqlite3"
    try:
        result = subprocess.run(
            ["make", "--no-print-directory", "demo", f"DEMO_ADDR={LOOPBACK}:{running.port}"],
            cwd=ROOT,
            env={**os.environ, "DEMO_DB_PATH": str(db), "MAKEFLAGS": ""},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        running.close()
    assert result.returncode != 0
    assert "is already in use" in result.stderr
    assert "The demo is ready" not in result.stdout
    assert not db.exists()
    assert running.received == b""
    assert running.connections == 1  # the check's own connection, nothing else
