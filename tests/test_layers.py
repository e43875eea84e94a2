"""The layering stays true: imports run one way (docs/architecture.md).

The layers are the import-linter contracts in pyproject.toml; import-linter reads every
import, those inside functions included. A function-level import of our own code is also
refused outright: where one exists only to break a loop, the loop is still there.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pytheus", "django_pytheus")


def test_import_contracts_are_kept(capsys: pytest.CaptureFixture[str]) -> None:
    status = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True)
    report = capsys.readouterr().out
    assert status == 0, report
    assert "0 broken" in report


def _function_level_imports(path: Path, root: Path = ROOT) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.ImportFrom):
                modules = [inner.module or ""]
            elif isinstance(inner, ast.Import):
                modules = [alias.name for alias in inner.names]
            else:
                continue
            for module in modules:
                if module.split(".")[0] in PACKAGES:
                    found.append(f"{path.relative_to(root)}:{inner.lineno} {module}")
    return found


def test_no_function_level_imports_of_our_own_code() -> None:
    found = [
        hit
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for hit in _function_level_imports(path)
    ]
    assert found == [], "import at the top of the module instead:\n" + "\n".join(found)


def test_the_checks_see_a_function_level_import(tmp_path: Path) -> None:
    # The scan itself can fail: a module with such an import is found.
    module = tmp_path / "loop.py"
    module.write_text("def f():\n    from pytheus.metrics import Counter\n    return Counter\n")
    assert _function_level_imports(module, tmp_path) == ["loop.py:2 pytheus.metrics"]
