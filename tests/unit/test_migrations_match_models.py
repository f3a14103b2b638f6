"""The migrations build exactly the schema the models describe."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from daemon.store.db import open_engine
from daemon.store.migrate import head_revision, migrate
from daemon.store.models import Base


def test_a_migrated_database_has_no_difference_from_the_models(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'state.db'}")
    assert migrate(engine) == head_revision()
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    # APScheduler's job table is created by APScheduler, not by the models.
    differences = [d for d in differences if "apscheduler" not in str(d)]
    assert differences == []
