"""The state database's account of each run: one run per action and host, one record
per planned step, each step's status as it goes."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from daemon.domain.clock import Clock
from daemon.domain.snapshot import Service
from daemon.domain.states import RunStatus, StepStatus
from daemon.playbooks.planning import PlannedStep
from daemon.playbooks.steps import StepOutcome
from daemon.store.models import PlaybookRun, StepRecord


class RunLog:
    """Opens runs with their step records and records how each step and run ends."""

    def __init__(self, sessions: sessionmaker[Session], clock: Clock) -> None:
        self.sessions = sessions
        self.clock = clock

    def open_run(
        self,
        action_id: int,
        account_id: str,
        phase: str,
        service: Service,
        playbook_name: str,
        planned: Sequence[PlannedStep],
    ) -> tuple[int, list[StepRecord]]:
        """Return this action's run on the service's host with its step records, creating
        them (one pending record per planned step) on first use."""
        with self.sessions.begin() as session:
            run = session.scalars(
                select(PlaybookRun).where(
                    PlaybookRun.action_id == action_id, PlaybookRun.host == service.host
                )
            ).first()
            if run is None:
                run = PlaybookRun(
                    account_id=account_id,
                    action_id=action_id,
                    playbook=playbook_name,
                    phase=phase,
                    host=service.host,
                    status=RunStatus.RUNNING,
                    started_at=self.clock(),
                )
                session.add(run)
                session.flush()
                for position, step in enumerate(planned):
                    session.add(
                        StepRecord(
                            run_id=run.id,
                            position=position,
                            name=("undo: " if step.undo_of else "") + step.spec.name[:90],
                            type="run" if step.undo_of else step.spec.type,
                            status=StepStatus.PENDING,
                        )
                    )
            run.status = RunStatus.RUNNING
            session.flush()
            records = session.scalars(
                select(StepRecord).where(StepRecord.run_id == run.id).order_by(StepRecord.position)
            ).all()
            session.expunge_all()
            return run.id, list(records)

    def record_step(
        self, record_id: int, status: StepStatus, error: str | None, outcome: StepOutcome | None
    ) -> None:
        """Record step `record_id` as `status`, with its error or its outcome."""
        now = self.clock()
        with self.sessions.begin() as session:
            record = session.get(StepRecord, record_id)
            assert record is not None
            record.status = status
            if status == StepStatus.RUNNING:
                record.started_at = now
            else:
                record.finished_at = now
            if error is not None:
                record.error = error
            if outcome is not None:
                record.changed = outcome.changed
                record.output = outcome.output

    def finish_run(self, run_id: int, status: RunStatus, error: str | None) -> None:
        """Record run `run_id` finished with `status` (and the error that ended it)."""
        with self.sessions.begin() as session:
            run = session.get(PlaybookRun, run_id)
            assert run is not None
            run.status, run.error, run.finished_at = status, error, self.clock()
