"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.config.load import load_config
from daemon.runtime.app import App, build_app
from tests.unit.test_config import MINIMAL


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    """The daemon built on the minimal config, with its own state database and no
    billing accounts."""
    (tmp_path / "billing.json").write_text('{"accounts": []}')
    config = tmp_path / "lapse.toml"
    config.write_text(MINIMAL.replace("sqlite:///state.db", f"sqlite:///{tmp_path / 'state.db'}"))
    built = build_app(load_config(config))
    yield built
    built.engine.dispose()
