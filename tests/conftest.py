"""Suite-wide pytest configuration: the lab fixtures and the `lab` marker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = [
    "tests.lab.fixtures",
    "tests.lab.state_db",
    "tests.lab.backup_scene",
    "tests.lab.playbook_scene",
    "tests.lab.proof_scene",
]

# `lapse` without -c or $LAPSE_CONFIG reads /etc/lapse/config.toml when it exists: a
# package installed on this machine (tests/lab/test_deb_package.py installs one, while
# other workers run) must not stand in for the embedded demo the tests expect.
os.environ["LAPSE_SYSTEM_CONFIG"] = "/nonexistent/lapse-tests/config.toml"

_TESTS = Path(__file__).resolve().parent
# Tests under these directories need the real services, whatever fixtures they name
# (the contract suites run every plugin against its lab service or loopback emulation).
_LAB_DIRS = (_TESTS / "lab", _TESTS / "e2e", _TESTS / "contracts")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/lab/, tests/e2e/ and tests/contracts/ with `lab`, so
    `-m "not lab"` works."""
    for item in items:
        path = Path(str(item.path)).resolve()
        if any(path.is_relative_to(directory) for directory in _LAB_DIRS):
            item.add_marker(pytest.mark.lab)
