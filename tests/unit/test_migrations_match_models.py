"""The migrations build exactly the schema the models describe."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import alembic.op
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect
from sqlalchemy.exc import OperationalError

import daemon.store.migrate
from daemon.store.db import open_engine
from daemon.store.errors import StateStoreError
from daemon.store.migrate import SHIPPED_HEAD, current_revision, head_revision, migrate
from daemon.store.models import Base


def test_a_migrated_database_has_no_difference_from_the_models(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'state.db'}")
    assert migrate(engine) == head_revision()
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    # APScheduler's job table is created by APScheduler, not by the models.
    differences = [d for d in differences if "apscheduler" not in str(d)]
    assert differences == []


def test_the_head_known_without_alembic_is_alembics_head() -> None:
    assert head_revision() == SHIPPED_HEAD


def test_a_database_at_the_head_is_opened_without_loading_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    migrate(open_engine(url))
    # A fresh interpreter, as a CLI command starts: nothing has imported alembic yet.
    script = (
        "import sys\n"
        "from daemon.store.db import open_engine\n"
        "from daemon.store.migrate import migrate\n"
        f"print(migrate(open_engine({url!r})), 'alembic' in sys.modules)\n"
    )
    answer = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.split()
    assert answer == [SHIPPED_HEAD, "False"]


def test_a_database_behind_the_head_is_still_migrated(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'state.db'}")
    migrate(engine)
    config = Config()
    scripts = Path(daemon.store.migrate.__file__).parent / "migrations"
    config.set_main_option("script_location", str(scripts))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0002")
    assert current_revision(engine) == "0002"
    assert "claimed_by" not in _columns(engine, "scheduled_actions")

    assert migrate(engine) == SHIPPED_HEAD
    assert "claimed_by" in _columns(engine, "scheduled_actions")


def _columns(engine: Engine, table: str) -> set[str]:
    return {column["name"] for column in inspect(engine).get_columns(table)}


def test_a_migration_stopped_midway_leaves_the_sqlite_database_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A daemon killed in the middle of its first migration must start next time: the
    tables made before the stop are not left behind without their revision (SQLite's
    driver would commit each CREATE on its own)."""
    engine = open_engine(f"sqlite:///{tmp_path / 'state.db'}")
    made: list[str] = []
    create_table = alembic.op.create_table

    def create_then_stop(name: str, *columns: Any, **options: Any) -> Any:
        if len(made) == 3:
            raise OperationalError("CREATE TABLE", {}, Exception("the process stops here"))
        made.append(name)
        return create_table(name, *columns, **options)

    monkeypatch.setattr(alembic.op, "create_table", create_then_stop)
    with pytest.raises(StateStoreError):
        migrate(engine)
    assert len(made) == 3
    assert inspect(engine).get_table_names() == []  # nothing of the stopped migration
    monkeypatch.undo()
    assert migrate(engine) == head_revision()
    assert set(made) <= set(inspect(engine).get_table_names())
