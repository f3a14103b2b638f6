"""The layer contracts of pyproject.toml hold on the tree, and each one fails when broken.

`make check` runs lint-imports; these tests also show that every contract can fail,
by planting one offending import in a copy of the package and running the same
command there.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[2]
_LINT = Path(sys.executable).with_name("lint-imports")


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    """Run lint-imports with the project's contracts in `tree`; return the finished run."""
    return subprocess.run(
        [str(_LINT), "--config", str(tree / "pyproject.toml")],
        cwd=tree,
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
    )


@pytest.fixture
def tree_copy(tmp_path: Path) -> Path:
    """A copy of the package and its pyproject.toml, to plant offending imports in."""
    shutil.copy(_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(
        _ROOT / "daemon", tmp_path / "daemon", ignore=shutil.ignore_patterns("__pycache__")
    )
    return tmp_path


def test_the_tree_keeps_every_contract(tree_copy: Path) -> None:
    run = _lint(tree_copy)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout


@pytest.mark.parametrize(
    ("module", "offending_import", "contract", "named"),
    # `named`: what the report must name, the importer or the sub-package holding it.
    [
        # A room reaching up the pipeline: the backup asks the lifecycle.
        ("daemon/backup/tree.py", "import daemon.lifecycle.engine", "The pipeline", "tree"),
        # The state store reaching the CLI.
        ("daemon/store/db.py", "import daemon.cli.main", "The pipeline", "db"),
        # Siblings: the lifecycle and the reports never import each other.
        ("daemon/reports/chart.py", "import daemon.lifecycle.brake", "The pipeline", "chart"),
        # The policy opening a database connection.
        ("daemon/policy/rules.py", "import sqlalchemy", "The policy and the vocabulary", "rules"),
        # The vocabulary running a host command.
        ("daemon/domain/clock.py", "import subprocess", "The policy and the vocabulary", "clock"),
        # Two files of one room importing each other (a cycle the layers cannot see).
        ("daemon/backup/verify.py", "import daemon.backup.service", "No import cycles", "verify"),
        # A cycle between two sub-packages of one room.
        (
            "daemon/backup/stores/base.py",
            "import daemon.backup.archive",
            "No import cycles",
            "stores",
        ),
        # A step type used outside playbooks.
        ("daemon/notices/compose.py", "import daemon.playbooks.steps.run", "Step types", "compose"),
        # The command line reading rows itself instead of asking a service.
        ("daemon/cli/views.py", "import daemon.store.models", "The command line reaches", "views"),
        # The command line running its own SQL.
        ("daemon/cli/audit.py", "import sqlalchemy", "The command line reaches", "audit"),
        # The command line opening the state database's engine itself.
        ("daemon/cli/main.py", "import daemon.store.db", "The command line reaches", "main"),
    ],
)
def test_an_offending_import_breaks_its_contract(
    tree_copy: Path, module: str, offending_import: str, contract: str, named: str
) -> None:
    path = tree_copy / module
    path.write_text(path.read_text() + f"\n{offending_import}  # planted by the test\n")
    run = _lint(tree_copy)
    assert run.returncode != 0, run.stdout
    broken = run.stdout.split("Broken contracts", 1)[1]
    assert contract in broken, run.stdout
    assert named in broken
