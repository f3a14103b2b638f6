"""A bare `mypy` run (`make typecheck`) checks every Python folder of the repository, the
daemon, its tests and the benchmarks, under the same strict settings; and the check of
that fails when a folder is left out or loosened."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

_ROOT = Path(__file__).resolve().parents[2]


def _python_folders(root: Path) -> set[str]:
    """The top-level folders of `root` holding Python files, hidden folders (the venvs,
    the caches) and setuptools' egg-info aside."""
    return {
        folder.name
        for folder in root.iterdir()
        if folder.is_dir()
        and not folder.name.startswith(".")
        and not folder.name.endswith(".egg-info")
        and next(folder.rglob("*.py"), None) is not None
    }


def _loosening(mypy: dict[str, Any], folders: set[str]) -> list[str]:
    """What keeps a bare mypy run under the `[tool.mypy]` table `mypy` from checking
    every one of `folders` strictly: a folder missing from `files`, strict mode off, an
    exclude, or an override naming one of the folders' modules (overrides are for
    third-party libraries only). Returns one line per problem; empty when there is none."""
    problems = [f"{name}/ is not in files" for name in sorted(folders - set(mypy["files"]))]
    if mypy.get("strict") is not True:
        problems.append("strict is off")
    if mypy.get("exclude"):
        problems.append(f"exclude = {mypy['exclude']!r}")
    for override in mypy.get("overrides", []):
        modules = override["module"]
        for module in [modules] if isinstance(modules, str) else modules:
            if module.split(".")[0] in folders:
                problems.append(f"an override loosens {module}")
    return problems


def _project_mypy() -> dict[str, Any]:
    config = tomllib.loads((_ROOT / "pyproject.toml").read_text())
    mypy: dict[str, Any] = config["tool"]["mypy"]
    return mypy


def test_a_bare_mypy_run_checks_every_python_folder_strictly() -> None:
    folders = _python_folders(_ROOT)

    assert folders >= {"daemon", "tests", "bench"}
    assert _loosening(_project_mypy(), folders) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"files": ["daemon", "bench"]}, "tests/ is not in files"),
        ({"strict": False}, "strict is off"),
        ({"exclude": "^tests/lab/"}, "exclude = '^tests/lab/'"),
        (
            {"overrides": [{"module": "tests.*", "ignore_errors": True}]},
            "an override loosens tests.*",
        ),
        (
            {"overrides": [{"module": ["moto.*", "bench.backup"], "strict": False}]},
            "an override loosens bench.backup",
        ),
    ],
)
def test_a_folder_left_out_or_loosened_is_reported(change: dict[str, Any], problem: str) -> None:
    planted = _project_mypy() | change

    assert problem in _loosening(planted, {"daemon", "tests", "bench"})
