"""The code keeps the shape README *Architecture* draws: every module says what it owns, every package's
public surface is real, and the README's layers are the ones import-linter enforces (``make lint``)."""

from __future__ import annotations

import ast
import importlib
import tomllib
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "reconciler"
MODULES = sorted(PACKAGE.rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_every_module_says_what_it_owns(path: Path) -> None:
    docstring = ast.get_docstring(ast.parse(path.read_text()))
    assert docstring, f"{path} has no module docstring"


@pytest.mark.parametrize("path", [path for path in MODULES if path.name == "__init__.py"], ids=module_name)
def test_every_package_has_an_honest_public_surface(path: Path) -> None:
    module = importlib.import_module(module_name(path))
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{module.__name__} has no __all__"
    missing = [name for name in exported if not hasattr(module, name)]
    assert not missing, f"{module.__name__}.__all__ names what it does not have: {missing}"


def test_the_readme_draws_the_layers_import_linter_enforces() -> None:
    config = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    [layers] = [c["layers"] for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]
    readme = (PROJECT_ROOT / "README.md").read_text()
    architecture = readme[readme.index("## Architecture") :]
    for layer in layers:
        for package in layer.split("|"):
            name = package.strip().removeprefix("reconciler.")
            assert name in architecture, f"README *Architecture* does not place {name}"
