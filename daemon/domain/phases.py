"""The playbook phases: the ones the lifecycle asks for, and the ones only ops start.

A playbook has five phases. Three carry an account through its lifecycle and are
queued by the policy's decisions (`Phase`); two are tools ops run by hand with
`lapse playbook run` (`OperatorPhase`): `restore` brings a site back from its
newest verified backup, `verify` checks that a suspension still holds. They are
two enums, not one, so that the type checker keeps the lifecycle from ever asking
for a restore or a verify (`daemon.policy.model.Action.run` takes a `Phase`),
while the playbook format and the runner, which treat all five alike, take a
`PlaybookPhase`. Both are string enums: a phase compares equal to its name as
stored in the state database and written in a playbook file.
"""

from __future__ import annotations

from enum import StrEnum


class Phase(StrEnum):
    """Playbook phases the lifecycle asks for."""

    SUSPEND = "suspend"
    UNSUSPEND = "unsuspend"
    DELETE = "delete"


class OperatorPhase(StrEnum):
    """Playbook phases only ops start (`lapse playbook run ACCOUNT PHASE`)."""

    RESTORE = "restore"
    VERIFY = "verify"


PlaybookPhase = Phase | OperatorPhase
# Every playbook phase, in the order a playbook file and `lapse playbook check` list them.
PLAYBOOK_PHASES: tuple[PlaybookPhase, ...] = (*Phase, *OperatorPhase)


def playbook_phase(name: str) -> PlaybookPhase:
    """Return the phase called `name`. Raises ValueError for a name no playbook has."""
    for phase in PLAYBOOK_PHASES:
        if phase == name:
            return phase
    raise ValueError(f"unknown playbook phase {name!r}")


# Which due phase runs first when workers are scarce: lower first, then the oldest. A
# paying client's unsuspend goes before everything; then the lifecycle's suspend and
# delete (in the order an account meets them); then what ops asked for.
PHASE_PRIORITY: dict[str, int] = {
    Phase.UNSUSPEND: 0,
    Phase.SUSPEND: 1,
    Phase.DELETE: 2,
    OperatorPhase.VERIFY: 3,
    OperatorPhase.RESTORE: 4,
}


def phase_priority(name: str) -> int:
    """Return the priority of the phase called `name` (0 runs first); a name no playbook
    has runs last."""
    return PHASE_PRIORITY.get(name, len(PHASE_PRIORITY))
