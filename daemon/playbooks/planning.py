"""Which steps a phase runs on one host, in order."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from daemon.domain.phases import Phase
from daemon.domain.states import StepStatus
from daemon.playbooks.schema import Playbook, StepSpec
from daemon.store.models import PlaybookRun, StepRecord


@dataclass(frozen=True)
class PlannedStep:
    """One step of a run as planned: the spec to run, and whether it is an undo."""

    spec: StepSpec
    undo_of: int | None = None  # the suspend step record this undoes


def plan_steps(
    sessions: sessionmaker[Session], phase: str, playbook: Playbook, account_id: str, host: str
) -> list[PlannedStep]:
    """The steps of `phase`; unsuspend first undoes the suspend steps that ran, newest
    first."""
    planned = [PlannedStep(spec) for spec in playbook.steps(phase)]
    if phase != Phase.UNSUSPEND:
        return planned
    undo = []
    with sessions() as session:
        done = session.execute(
            select(StepRecord.id, StepRecord.position)
            .join(PlaybookRun, StepRecord.run_id == PlaybookRun.id)
            .where(
                PlaybookRun.account_id == account_id,
                PlaybookRun.phase == Phase.SUSPEND.value,
                PlaybookRun.host == host,
                StepRecord.status == StepStatus.DONE,
                StepRecord.changed.is_(True),
            )
            .order_by(StepRecord.id.desc())
        ).all()
    suspend_steps = playbook.steps(Phase.SUSPEND)
    for record_id, position in done:
        if position < len(suspend_steps) and suspend_steps[position].undoable:
            undo.append(PlannedStep(suspend_steps[position], undo_of=record_id))
    return undo + planned
