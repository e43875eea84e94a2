"""The README's examples run as written.

Every ```python block that starts by importing pytheus is a complete program: each runs in a
fresh interpreter. A Redis address in it is pointed at the test's own redis-server.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import RedisServer

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def _programs() -> list[str]:
    blocks = BLOCK.findall(README.read_text())
    return [b for b in blocks if b.lstrip().startswith(("from pytheus", "import pytheus"))]


def test_readme_has_runnable_examples() -> None:
    assert len(_programs()) >= 2, "the quickstart and the Redis example"


@pytest.mark.parametrize("index", range(len(_programs())))
def test_readme_example_runs(index: int, redis_server: RedisServer, tmp_path: Path) -> None:
    source = _programs()[index]
    source = source.replace('"port": 6379', f'"port": {redis_server.port}')
    source = source.replace("127.0.0.1:6379", f"127.0.0.1:{redis_server.port}")
    assert "6379" not in source, "every Redis address must point at the test's server"
    # Run it, then prove it did what it says: the metrics it defined are exposed.
    program = (
        source + "\nfrom pytheus.exposition import generate_metrics\nprint(generate_metrics())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "# TYPE" in result.stdout
    for name in re.findall(r'(?:Counter|Gauge|Histogram|Summary)\(\s*"(\w+)"', source):
        assert name.removesuffix("_total") in result.stdout, name


def _section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_development_says_what_each_system_package_is_for() -> None:
    """Every Debian package the install script may install is named in the README's
    Development section, with its size and what it is for (the largest, chromium, was
    missing: a first `make test` downloaded it unannounced)."""
    script = (README.parent / "scripts" / "install-system-deps.sh").read_text()
    packages = set(re.findall(r"packages\+=\((\S+)\)", script))
    assert packages == {"redis-server", "prometheus", "chromium"}
    development = _section("Development")
    for package in packages:
        entry = re.search(
            rf"- `{re.escape(package)}` \((\d+|about \d+) MB[^)]*\): (\S.+)", development
        )
        assert entry, f"{package} is not listed with its size and purpose:\n{development}"
    assert "355 MB" in development


def test_documented_demo_commands_work_without_an_activated_venv() -> None:
    """`python manage.py ...` fails unless the venv is activated; the README shows
    `.venv/bin/python manage.py ...` (tests/e2e/test_demo.py runs what the demo prints)."""
    text = README.read_text()
    assert re.findall(r"(?<![/\w])python manage\.py", text) == []
    assert ".venv/bin/python manage.py changepassword admin" in text
