"""The layers stay as the README draws them: the core knows no store, network or git library."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "reconciler"
CORE = ["manifests/loader", "manifests/models", "manifests/violations", "manifests/rules", "manifests/urls",
        "manifests/validation", "engine/plan", "engine/desired", "approval/gate", "engine/status"]
FORBIDDEN_IN_CORE = ("sqlite3", "reconciler.backends", "httpx", "hvac", "kubernetes", "uvicorn", "subprocess")


def imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("module", CORE)
def test_the_core_imports_no_store_network_or_process_library(module: str) -> None:
    imported = imports_of(PACKAGE / f"{module}.py")
    assert not {name for name in imported if name.startswith(FORBIDDEN_IN_CORE)}


def test_only_the_git_modules_import_git() -> None:
    users = {path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py") if "git" in imports_of(path)}
    assert users <= {"backends/git.py", "cli/approve.py"}


def test_only_backends_import_sqlite() -> None:
    users = {path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py") if "sqlite3" in imports_of(path)}
    assert users <= {"backends/sqlite/database.py", "backends/sqlite/state.py", "backends/sqlite/secrets.py"}


def test_every_module_says_what_it_owns() -> None:
    for path in PACKAGE.rglob("*.py"):
        docstring = ast.get_docstring(ast.parse(path.read_text()))
        assert docstring, f"{path} has no module docstring"
