"""A run is planned from its own step records: an undo record stands for the suspend
step it names, and records that no longer fit the playbook are refused."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from daemon.domain.states import RunStatus, StepStatus
from daemon.playbooks.library import load_playbook
from daemon.playbooks.planning import planned_from_records
from daemon.playbooks.steps import StepFailedError
from daemon.store.db import open_engine
from daemon.store.migrate import migrate
from daemon.store.models import PlaybookRun, StepRecord

NGINX = load_playbook(Path(__file__).resolve().parents[2] / "playbooks" / "nginx-linux.toml")


@pytest.fixture
def sessions(tmp_path: Path) -> sessionmaker[Session]:
    engine = open_engine(f"sqlite:///{tmp_path / 'state.db'}")
    migrate(engine)
    return sessionmaker(engine)


def record(record_id: int, position: int, name: str, undoes: int | None = None) -> StepRecord:
    return StepRecord(
        id=record_id,
        run_id=1,
        position=position,
        name=name,
        type="run",
        status=StepStatus.PENDING,
        undoes=undoes,
    )


def store(sessions: sessionmaker[Session], *records: StepRecord) -> None:
    """Store suspend step records, in the suspend run they belong to."""
    with sessions.begin() as session:
        session.add(
            PlaybookRun(
                id=1,
                account_id="acct-1",
                playbook="nginx-linux",
                phase="suspend",
                host="web1",
                status=RunStatus.DONE,
                started_at=datetime(2026, 12, 1, tzinfo=UTC),
            )
        )
        session.flush()
        session.add_all(records)


def test_undo_records_stand_for_the_suspend_steps_they_name(
    sessions: sessionmaker[Session],
) -> None:
    store(sessions, record(11, 1, "upload"), record(14, 4, "database users"))
    records = [
        record(20, 0, "undo: database users", undoes=14),
        record(21, 1, "undo: upload", undoes=11),
        record(22, 2, "check"),
    ]

    planned = planned_from_records(sessions, "unsuspend", NGINX, records)

    suspend, unsuspend = NGINX.steps("suspend"), NGINX.steps("unsuspend")
    assert [(step.spec, step.undo_of) for step in planned] == [
        (suspend[4], 14),
        (suspend[1], 11),
        (unsuspend[0], None),
    ]


def test_records_an_older_release_wrote_without_naming_their_undo_are_refused(
    sessions: sessionmaker[Session],
) -> None:
    records = [record(20, 0, "undo: database users"), record(21, 1, "check")]

    with pytest.raises(StepFailedError, match="matches no step of the playbook"):
        planned_from_records(sessions, "unsuspend", NGINX, records)


def test_an_undo_of_a_step_the_playbook_no_longer_undoes_is_refused(
    sessions: sessionmaker[Session],
) -> None:
    store(sessions, record(10, 0, "backup"))  # the backup step has no undo
    records = [record(20, 0, "undo: backup", undoes=10), record(21, 1, "check")]

    with pytest.raises(StepFailedError, match="matches no step of the playbook"):
        planned_from_records(sessions, "unsuspend", NGINX, records)


def test_a_phase_step_the_run_never_planned_is_refused(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(StepFailedError, match="steps its run did not plan"):
        planned_from_records(sessions, "unsuspend", NGINX, [])
