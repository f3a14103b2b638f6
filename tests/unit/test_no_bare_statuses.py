"""Statuses come from one vocabulary: no bare status strings in the daemon, and the
stored strings stay those the database already holds.

The scan (tests/unit/bare_statuses.py) is shown failing on planted examples of
every kind of bare string it refuses, and passing over what it must leave alone.
"""

from __future__ import annotations

import shutil
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session

from daemon.domain.states import (
    ActionStatus,
    ApprovalStatus,
    BackupStatus,
    NoticeStatus,
    RestoreOutcome,
    RunStatus,
    State,
    StepStatus,
)
from daemon.store.db import open_engine
from daemon.store.migrate import migrate
from daemon.store.models import Backup
from tests.unit.bare_statuses import CONTEXT_ENUMS, STATUS_ENUMS, scan_package, scan_source

_DAEMON = Path(__file__).resolve().parents[2] / "daemon"


def test_the_daemon_holds_no_bare_status_string() -> None:
    findings = scan_package(_DAEMON)
    assert findings == [], "write the enum member of daemon.domain.states:\n" + "\n".join(
        map(str, findings)
    )


def test_every_status_column_is_scanned_and_every_other_enum_in_context() -> None:
    assert {
        ActionStatus,
        RunStatus,
        StepStatus,
        BackupStatus,
        NoticeStatus,
        ApprovalStatus,
    } == STATUS_ENUMS
    assert {State, RestoreOutcome} <= CONTEXT_ENUMS


def test_the_stored_strings_are_those_the_database_holds() -> None:
    # Changing one of these strings needs a migration of the rows that hold it.
    assert [*map(str, ActionStatus)] == ["pending", "running", "done", "failed", "cancelled"]
    assert [*map(str, RunStatus)] == ["running", "done", "failed", "cancelled"]
    assert [*map(str, ApprovalStatus)] == ["waiting", "approved", "rejected"]
    assert [*map(str, StepStatus)] == [
        "pending",
        "running",
        "done",
        "failed",
        "skipped",
        "undone",
    ]
    assert [*map(str, BackupStatus)] == [
        "running",
        "completed",
        "verified",
        "failed",
        "corrupt",
        "expired",
    ]
    assert [*map(str, NoticeStatus)] == ["pending", "sent", "failed"]
    assert [*map(str, RestoreOutcome)] == ["restored", "failed"]


def _values(source: str) -> list[tuple[int, str]]:
    return [(f.line, f.value) for f in scan_source(textwrap.dedent(source))]


@pytest.mark.parametrize(
    ("planted", "found"),
    [
        # A comparison, in Python and in a query.
        ('if letter.status != "pending":\n    pass\n', [(1, "pending")]),
        ('select(Backup).where(Backup.status == "running")\n', [(1, "running")]),
        # A tuple compared with `in`, spread or not, and one given to a column's in_().
        ('ok = backup.status in ("completed", "verified")\n', [(1, "completed"), (1, "verified")]),
        ('ok = backup.status in (*PROVABLE_BACKUPS, "corrupt")\n', [(1, "corrupt")]),
        ('q = StepRecord.status.in_(("running", "done"))\n', [(1, "done"), (1, "running")]),
        # Writes: an attribute, a tuple unpacked, a keyword, an update's values.
        ('row.status = "expired"\n', [(1, "expired")]),
        ('row.status, row.error = "failed", None\n', [(1, "failed")]),
        ('Correspondence(status="sent")\n', [(1, "sent")]),
        ('update(ScheduledAction).values(status="cancelled")\n', [(1, "cancelled")]),
        # A status passed along, returned, or kept in a constant.
        ('self._record_step(record.id, "undone", None, None)\n', [(1, "undone")]),
        ('def execute() -> str:\n    return "skipped"\n', [(2, "skipped")]),
        ('_OUTCOMES = ("done", "corrupt")\n', [(1, "corrupt"), (1, "done")]),
        # Account states and outcomes, where one is meant.
        ('Account(state="active")\n', [(1, "active")]),
        ('if row.resume_state == "legal-hold":\n    pass\n', [(1, "legal-hold")]),
        ('q = Account.state.in_(["suspended", "deleted"])\n', [(1, "deleted"), (1, "suspended")]),
        ('outcome = "restored" if error is None else "failed"\n', [(1, "failed"), (1, "restored")]),
    ],
)
def test_a_planted_bare_string_is_found(planted: str, found: list[tuple[int, str]]) -> None:
    assert _values(planted) == found


@pytest.mark.parametrize(
    "innocent",
    [
        # Docstrings may name statuses.
        'def f() -> None:\n    """Mark it "done" or "failed"."""\n',
        # The words inside longer text, and members of the vocabulary.
        'log.info("backup failed", status=BackupStatus.FAILED)\n',
        'text = f"{StepStatus.DONE}, unchanged"\n',
        # State and outcome words where they name a field or say what happened.
        'record = {"exempt": snapshot.exempt}\n',
        'verb = "would restore" if dry_run else "restored"\n',
    ],
)
def test_what_is_no_bare_status_is_left_alone(innocent: str) -> None:
    assert _values(innocent) == []


def test_a_bare_status_planted_in_a_copy_of_the_daemon_is_found(tmp_path: Path) -> None:
    copy = tmp_path / "daemon"
    shutil.copytree(_DAEMON, copy, ignore=shutil.ignore_patterns("__pycache__"))
    desk = copy / "notices" / "desk.py"
    desk.write_text(
        desk.read_text().replace(
            "Correspondence.status == NoticeStatus.PENDING", 'Correspondence.status == "pending"'
        )
    )
    # The vocabulary and the migrations may name the strings.
    (copy / "domain" / "extra.py").write_text('DONE = "done"\n')
    (copy / "store" / "migrations" / "versions" / "extra.py").write_text('x = "done"\n')

    findings = scan_package(copy)

    assert [(f.path, f.value) for f in findings] == [("daemon/notices/desk.py", "pending")]


def test_status_columns_read_what_the_database_already_holds(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'state.db'}")
    migrate(engine)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO backups (id, account_id, store, location, status, reason, "
                "created_at) VALUES ('b1', 'acme', 'local', '/x', 'verified', 'suspend', "
                "'2025-01-01 00:00:00')"
            )
        )
    with Session(engine) as session:
        row = session.get(Backup, "b1")
        assert row is not None
        assert row.status is BackupStatus.VERIFIED
        row.status = BackupStatus.CORRUPT
        session.commit()
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT status FROM backups WHERE id = 'b1'")).scalar()
    assert stored == "corrupt"
    assert type(stored) is str


def test_a_status_column_refuses_a_string_that_is_no_status(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'state.db'}")
    migrate(engine)
    with Session(engine) as session:
        session.add(
            Backup(
                id="b1",
                account_id="acme",
                store="local",
                location="/x",
                status="complete",  # misspelt: the value is "completed"
                reason="suspend",
                created_at=datetime(2025, 1, 1, tzinfo=UTC),
            )
        )
        with pytest.raises(StatementError, match="complete"):
            session.commit()
