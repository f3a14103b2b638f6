"""Which steps a phase runs on one host, in order.

A run's plan is made once, when the run opens, and written down as its step records
(daemon.playbooks.run_log); from then on the records are the plan. A resumed run (after
a crash, a stop, or `lapse retry`) is planned again from its own records, never afresh:
an unsuspend run marks each suspend step undone as soon as its undo ran, so a fresh
plan would leave those steps out and the plan would no longer line up with the
records it is walked with. Each undo record names the suspend record it reverses
(`StepRecord.undoes`), so the two are matched by identity, not by position.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from daemon.domain.phases import Phase
from daemon.domain.states import StepStatus
from daemon.playbooks.schema import Playbook, StepSpec
from daemon.playbooks.steps import StepFailedError
from daemon.store.models import PlaybookRun, StepRecord


@dataclass(frozen=True)
class PlannedStep:
    """One step of a run as planned: the spec to run, and whether it is an undo."""

    spec: StepSpec
    undo_of: int | None = None  # the suspend step record this undoes


def plan_steps(
    sessions: sessionmaker[Session], phase: str, playbook: Playbook, account_id: str, host: str
) -> list[PlannedStep]:
    """The steps of a run of `phase` about to open on `host`; unsuspend first undoes the
    suspend steps that ran (done, changed, not yet undone), newest first."""
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


def planned_from_records(
    sessions: sessionmaker[Session], phase: str, playbook: Playbook, records: Sequence[StepRecord]
) -> list[PlannedStep]:
    """The plan a run's step `records` (in position order) were written from: an undo
    record stands for the undo of the suspend record it names, any other for the next
    of the phase's own steps. Returns one planned step per record, in the same order.

    Raises StepFailedError when the records no longer fit the playbook (it changed
    since the run opened, or an older release opened the run without naming what its
    undo steps undo): guessing which step a record stands for could run the wrong one.
    """
    undone = [record.undoes for record in records if record.undoes is not None]
    with sessions() as session:
        rows = session.execute(
            select(StepRecord.id, StepRecord.position).where(StepRecord.id.in_(undone))
        ).all()
    positions = {record_id: position for record_id, position in rows}
    suspend_steps = playbook.steps(Phase.SUSPEND)
    own = list(playbook.steps(phase))
    planned = []
    for record in records:
        if record.undoes is None:
            if not own:
                raise _misfit(phase, record)
            planned.append(PlannedStep(own.pop(0)))
            continue
        position = positions.get(record.undoes)
        if position is None or position >= len(suspend_steps):
            raise _misfit(phase, record)
        if not suspend_steps[position].undoable:
            raise _misfit(phase, record)
        planned.append(PlannedStep(suspend_steps[position], undo_of=record.undoes))
    if own:
        raise StepFailedError(
            f"the playbook's {phase} phase has steps its run did not plan ({own[0].name!r}):"
            " the playbook changed since the run began, so the run is not resumed"
        )
    return planned


def _misfit(phase: str, record: StepRecord) -> StepFailedError:
    """The error for a step record the playbook's `phase` has no step for."""
    return StepFailedError(
        f"step {record.position} of the {phase} run ({record.name!r}) matches no step of"
        " the playbook: it changed since the run began (or an older release opened the"
        " run), so the run is not resumed"
    )
