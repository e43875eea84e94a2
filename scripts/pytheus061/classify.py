"""Classify the results of pytheus 0.6.1's test suite run against this package.

    python classify.py SUITE_DIR PYTEST_RA_OUTPUT

A test *touches internals* when its source (with its parametrize arguments and the
fixtures it uses, autouse ones included) names something pytheus 0.6.1 does not
document: a name or attribute starting with ``_`` (``_metric_value_backend``,
``_collector``, ``_Metric``, ...), its undocumented helpers (``pytheus.utils``,
``format_labels``, ``get_backend_class``, the Redis backend's ``CONNECTION_POOL`` and
``EXPIRE_KEY_TIME``, ``Sample``), ``unittest.mock`` patches of its modules, or a backend
class instantiated as a per-value object. Classes and helpers a test file defines itself
do not count. Prints passed / failed for internals / failed on documented names only
(each of those listed), and the total.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

UNDOCUMENTED = frozenset(
    {
        "InfFloat",
        "MetricType",
        "format_labels",
        "get_backend_class",
        "get_backend",
        "BACKEND_CLASS",
        "BACKEND_CONFIG",
        "CONNECTION_POOL",
        "EXPIRE_KEY_TIME",
        "Sample",
        "mock",
    }
)
PER_VALUE_CLASSES = frozenset({"MultiProcessRedisBackend", "SingleProcessBackend"})
# The module-level client test_redis.py flushes Redis with; the harness provides it.
HARNESS_PROVIDED = frozenset({"pool"})


def _internals(node: ast.AST, local: set[str]) -> set[str]:
    found: set[str] = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Attribute):
            if (n.attr.startswith("_") and not n.attr.startswith("__")) or n.attr in UNDOCUMENTED:
                found.add("." + n.attr)
        elif (
            isinstance(n, ast.Call)
            and isinstance(n.func, ast.Name)
            and n.func.id in PER_VALUE_CLASSES
            and len(n.args) >= 2
        ):
            found.add(f"{n.func.id}(config, metric)")
        private = isinstance(n, ast.Name) and (
            (n.id.startswith("_") and not n.id.startswith("__")) or n.id in UNDOCUMENTED
        )
        if private and isinstance(n, ast.Name) and n.id not in local:
            found.add(n.id)
    return found


def _fixtures(body: list[ast.stmt], local: set[str]) -> tuple[dict[str, set[str]], set[str]]:
    found: dict[str, set[str]] = {}
    autouse: set[str] = set()
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            decorators = [ast.unparse(d) for d in node.decorator_list]
            if any("fixture" in d for d in decorators):
                found[node.name] = _internals(node, local)
                if any("autouse=True" in d for d in decorators):
                    autouse.add(node.name)
    return found, autouse


def classify(suite: Path) -> dict[str, set[str]]:
    """Test function node id -> the internals it touches."""
    result: dict[str, set[str]] = {}
    for path in sorted(suite.glob("tests/**/test_*.py")):
        tree = ast.parse(path.read_text())
        local = {
            n.name
            for n in ast.walk(tree)
            if isinstance(n, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        }
        rel = path.relative_to(suite).as_posix()
        module_fixtures, module_autouse = _fixtures(tree.body, local)

        def add(  # noqa: PLR0917
            fn: ast.FunctionDef | ast.AsyncFunctionDef,
            prefix: str,
            fixtures: dict[str, set[str]],
            autouse: set[str],
            extra: set[str],
            rel: str = rel,
            local: set[str] = local,
        ) -> None:
            used = _internals(fn, local) | extra
            for d in fn.decorator_list:
                used |= _internals(d, local)
            for arg in fn.args.args:
                used |= fixtures.get(arg.arg, set())
            for name in autouse:
                used |= fixtures[name] - HARNESS_PROVIDED
            result[f"{rel}::{prefix}{fn.name}"] = used

        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                if node.name.startswith("test"):
                    add(node, "", module_fixtures, module_autouse, set())
            elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
                own, own_autouse = _fixtures(node.body, local)
                extra: set[str] = set()
                for d in node.decorator_list:
                    extra |= _internals(d, local)
                fixtures = {**module_fixtures, **own}
                autouse = module_autouse | own_autouse
                for sub in node.body:
                    is_test = isinstance(sub, ast.FunctionDef | ast.AsyncFunctionDef)
                    if is_test and sub.name.startswith("test"):  # type: ignore[union-attr]
                        add(sub, node.name + "::", fixtures, autouse, extra)  # type: ignore[arg-type]
    return result


def main(suite: Path, output: Path) -> None:
    classes = classify(suite)
    status: dict[str, str] = {}
    for line in output.read_text().splitlines():
        m = re.match(r"^(PASSED|FAILED|ERROR) (tests/\S+)", line)
        if m:
            state, node = m.groups()
            if state == "ERROR" and node in status:  # an error at teardown after a pass
                status[node] = "ERROR"
            else:
                status[node] = state
    passed, internals, documented = 0, 0, []
    for node, state in sorted(status.items()):
        touched = classes[re.sub(r"\[.*\]$", "", node)]
        if state == "PASSED":
            passed += 1
        elif touched:
            internals += 1
        else:
            documented.append(node)
    print(
        f"passed {passed} / failed for internals {internals} / "
        f"failed on documented names {len(documented)} / total {len(status)}"
    )
    for node in documented:
        print(f"  documented names only, failed: {node}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
