"""The state database's account of each run: one run per action and host, one record
per planned step, each step's status as it goes.

The records are the run's plan (daemon.playbooks.planning): an undo record names the
suspend record it reverses, and the undo is recorded done together with that suspend
record undone, in one transaction, so no crash leaves one without the other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

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
        plan: Callable[[], Sequence[PlannedStep]],
    ) -> tuple[int, list[StepRecord]]:
        """Return this action's run on the service's host with its step records in
        position order, creating them on first use: one pending record per step `plan()`
        returns then (it is not called for a run already open)."""
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
                for position, step in enumerate(plan()):
                    session.add(
                        StepRecord(
                            run_id=run.id,
                            position=position,
                            name=("undo: " if step.undo_of else "") + step.spec.name[:90],
                            type="run" if step.undo_of else step.spec.type,
                            status=StepStatus.PENDING,
                            undoes=step.undo_of,
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

    def record_undo_done(self, record_id: int, undone_id: int, outcome: StepOutcome) -> None:
        """Record undo step `record_id` done with its outcome and the suspend step record
        it reverses (`undone_id`) undone, both or neither."""
        now = self.clock()
        with self.sessions.begin() as session:
            record = session.get(StepRecord, record_id)
            undone = session.get(StepRecord, undone_id)
            assert record is not None and undone is not None
            record.status, record.finished_at = StepStatus.DONE, now
            record.changed, record.output = outcome.changed, outcome.output
            undone.status, undone.finished_at = StepStatus.UNDONE, now

    def finish_run(self, run_id: int, status: RunStatus, error: str | None) -> None:
        """Record run `run_id` finished with `status` (and the error that ended it)."""
        with self.sessions.begin() as session:
            run = session.get(PlaybookRun, run_id)
            assert run is not None
            run.status, run.error, run.finished_at = status, error, self.clock()
