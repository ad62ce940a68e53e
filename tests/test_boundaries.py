"""The architecture's two rules: engine/ never imports ftui/, ftui/ never imports torch."""

from __future__ import annotations

import ast
import subprocess
import sys

from tests.conftest import REPO_ROOT


def _imported_in_subprocess(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    return set(out.stdout.split())


def _top_level_imports(package: str) -> set[str]:
    names: set[str] = set()
    for path in (REPO_ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def test_ftui_cli_and_app_do_not_import_torch() -> None:
    modules = _imported_in_subprocess("import ftui.cli, ftui.app")
    assert "torch" not in modules
    assert "matplotlib" not in modules, "matplotlib is imported only when a figure is exported"


def test_the_cli_parser_loads_no_numpy() -> None:
    # Every `ftui` command builds the whole parser: `ftui list` must not pay for numpy or the analysis.
    modules = _imported_in_subprocess("from ftui.cli import build_parser; build_parser()")
    assert "numpy" not in modules and "ftui.analysis.matrix" not in modules


def test_no_ftui_module_mentions_torch() -> None:
    assert "torch" not in _top_level_imports("ftui")
    assert "engine" not in _top_level_imports("ftui")  # the task names are read from engine/tasks/names.toml


def test_engine_never_imports_ftui() -> None:
    assert "ftui" not in _top_level_imports("engine")
    modules = _imported_in_subprocess("import engine.__main__")
    assert not any(m == "ftui" or m.startswith("ftui.") for m in modules)
