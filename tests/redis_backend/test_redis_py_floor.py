"""The oldest redis-py that pyproject.toml allows runs the Redis backend's tests too.

The venv has the newest redis-py; a user may have the oldest we allow, whose defaults
differ (no socket timeout before 6.0: a scrape through a pool without one used to hang
for as long as Redis did not answer). pip installs that version once into pytest's cache
directory, and the Redis backend's tests run again in a process that imports it first.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.redis_backend.helpers import REPO

# The Redis backend's tests that are quick enough to run twice (the slow ones start
# gunicorn and real deployments), and the Django app's that use its Redis backend.
FLOOR_TESTS = [
    "tests/redis_backend",
    "tests/sentinel",
    "tests/django_app/test_redis_backend.py",
    "tests/django_app/test_redis_production.py",
]


def allowed_floor() -> str:
    """The version in pyproject.toml's ``redis>=X`` requirement."""
    match = re.search(r'"redis>=([0-9.]+)"', (REPO / "pyproject.toml").read_text())
    assert match, "pyproject.toml names no redis>= floor"
    return match.group(1)


def installed_floor(cache_dir: Path, version: str) -> Path:
    target = cache_dir / f"redis-py-{version}"
    if not (target / "redis" / "__init__.py").exists():
        pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target"]
        result = subprocess.run(
            [*pip, str(target), f"redis=={version}"],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert result.returncode == 0, (
            f"pip could not install redis=={version}, the oldest redis-py pyproject.toml "
            f"allows (is the package index reachable?):\n{result.stderr}"
        )
    return target


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_the_redis_backend_with_the_oldest_redis_py_allowed(request: pytest.FixtureRequest) -> None:
    version = allowed_floor()
    target = installed_floor(Path(request.config.cache.mkdir("redis-py")), version)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), str(REPO)])}
    imported = subprocess.run(
        [sys.executable, "-c", "import redis; print(redis.__version__, redis.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    assert imported[0] in (version, f"{version}.0", f"{version}.0.0"), imported
    assert imported[1].startswith(str(target)), imported
    # redis-py 5.0's Redis.close() leaves its pool's sockets to the garbage collector: the
    # tests' own clients (not the backend, which disconnects its pool) would fail on the
    # ResourceWarning. The main run checks the backend's sockets.
    unclosed = "ignore::pytest.PytestUnraisableExceptionWarning"
    pytest_args = ["-q", "-x", "-p", "no:cacheprovider", "-W", unclosed, "-m", "not slow"]
    pytest_args += FLOOR_TESTS
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *pytest_args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1400,
        check=False,
    )
    assert result.returncode == 0, f"with redis-py {imported[0]}:\n{result.stdout[-8000:]}"
    assert re.search(r"\d+ passed", result.stdout), result.stdout[-2000:]
