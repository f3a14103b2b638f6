"""The state-database fixture: every test using it runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty state database URL: an SQLite file, or a new lab PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    postgres = request.getfixturevalue("postgres")
    url: str = postgres.create_database(f"lapse_{uuid.uuid4().hex[:12]}")
    return url
