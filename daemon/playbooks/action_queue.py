"""The queue of playbook actions in the state database: which are due, which an account
has waiting, queueing one for ops, reopening a failed one, and claiming one to run.

An action is claimed with one conditional update naming this process, so two
processes (the daemon and an operator's command) never run it at once
(daemon.playbooks.claims names the process). A daemon's worker pool claims the next
action with `claim_next`, which holds it under a lease the pool renews while it
works: on PostgreSQL the choice is made under a transaction-level advisory lock
(one claimer at a time across daemons, so per-host counts hold) over rows read
`FOR UPDATE SKIP LOCKED`; on SQLite, where one daemon acts, the conditional update
alone. An action whose lease ran out (its daemon killed, its machine lost) is due
again and resumes from the step it reached.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import false, or_, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from daemon.domain.clock import Clock
from daemon.domain.errors import UnknownAccountError
from daemon.domain.phases import Phase, phase_priority
from daemon.domain.snapshot import AccountSnapshot
from daemon.domain.states import ActionStatus, RunStatus, State, StepStatus
from daemon.playbooks.claims import claim_is_stale, this_process
from daemon.playbooks.picking import QueuedAction, Running, pick_next
from daemon.playbooks.ports import BrakeStatus
from daemon.store.models import Account, PlaybookRun, ScheduledAction, StepRecord
from daemon.store.records import action_hosts, split_hosts, stored_snapshot

# The key of the transaction-level advisory lock claimers take on PostgreSQL.
CLAIM_LOCK_KEY = 0x4C61707365436C61  # "LapseCla"
# How many of the due pending actions one pick looks at (in queue order): enough to
# get past a busy host's or account's, bounded at a million accounts.
_PICK_WINDOW = 500


def wall_clock() -> datetime:
    """Leases are measured on the machines' clocks, not the lifecycle's (which tests and
    `simulate` move): a lease is about processes being alive."""
    return datetime.now(UTC)


log = structlog.get_logger("lapse.playbooks")


@dataclass(frozen=True)
class ClaimedAction:
    """An action this process now runs, with what its phase needs of the account."""

    action_id: int
    phase: str
    account_id: str
    since: datetime  # when the phase was asked for
    snapshot: AccountSnapshot | None
    suspended_at: datetime | None
    legal_hold: bool
    owner: str  # the claim's holder: this daemon's worker pool, or this process
    lease: timedelta | None  # None: held while the claiming process lives (a command)


class ActionQueue:
    """Picks, queues and claims the playbook actions of the state database."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Clock,
        brake: BrakeStatus,
        admits: Callable[[Session, int], bool] | None = None,
    ) -> None:
        """`admits(session, action_id)` may hold a due action back (the approval gate,
        daemon.playbooks.approvals): `claim_next` then leaves it queued and considers the
        next."""
        self.sessions = sessions
        self.clock = clock
        self.brake = brake
        self.admits = admits

    def claim_next(
        self,
        owner: str,
        lease: timedelta,
        host_limit: Callable[[str], int],
        only: Collection[str] | None = None,
    ) -> ClaimedAction | None:
        """Claim for `owner` the next due action a worker may take (see
        daemon.playbooks.picking.pick_next), under a lease of `lease`; None when none may
        start now. `only` restricts the phases (the reserved worker's unsuspend).
        """
        now, moment = wall_clock(), self.clock()
        braked = self.brake.status() is not None
        with self.sessions.begin() as session:
            if session.get_bind().dialect.name == "postgresql":
                session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CLAIM_LOCK_KEY})
            running, stale = _running(session, now)
            queued = _due(session, moment, stale)
            admits = self.admits
            allow = (lambda action: admits(session, action.action_id)) if admits else None
            picked = pick_next(queued, running, host_limit, braked=braked, only=only, allow=allow)
            if picked is None:
                return None
            return self._take(session, picked.action_id, owner, lease)

    def busy_accounts(self) -> set[str]:
        """The accounts with a phase running now, in any process."""
        with self.sessions() as session:
            running, _stale = _running(session, wall_clock())
        return running.accounts

    def renew(self, owner: str, action_ids: Collection[int], lease: timedelta) -> set[int]:
        """Extend `owner`'s lease on the actions `action_ids`; return those it still holds
        (an action missing from the answer was taken over after its lease ran out)."""
        if not action_ids:
            return set()
        with self.sessions.begin() as session:
            session.execute(
                update(ScheduledAction)
                .where(
                    ScheduledAction.id.in_(list(action_ids)),
                    ScheduledAction.claimed_by == owner,
                    ScheduledAction.status == ActionStatus.RUNNING,
                )
                .values(lease_until=wall_clock() + lease)
            )
            held = session.scalars(
                select(ScheduledAction.id).where(
                    ScheduledAction.id.in_(list(action_ids)), ScheduledAction.claimed_by == owner
                )
            )
            return set(held)

    def holds(self, claimed: ClaimedAction) -> bool:
        """Whether `claimed` is still its owner's to run, extending its lease if so.

        False once another daemon took the action over (the owner's lease ran out while
        it was paused, cut off from the database or too slow to renew) or it was settled
        elsewhere: the owner must then stop without touching the action or its records.
        One conditional update, so a takeover after this answer waits out a full lease.
        """
        until = None if claimed.lease is None else wall_clock() + claimed.lease
        with self.sessions.begin() as session:
            kept = session.execute(
                update(ScheduledAction)
                .where(
                    ScheduledAction.id == claimed.action_id,
                    ScheduledAction.claimed_by == claimed.owner,
                    ScheduledAction.status == ActionStatus.RUNNING,
                )
                .values(lease_until=until)
            )
            return bool(kept.rowcount == 1)  # type: ignore[attr-defined]

    def _take(
        self, session: Session, action_id: int, owner: str, lease: timedelta
    ) -> ClaimedAction | None:
        """Claim the picked action in `session` (it is pending, or running and stale)."""
        action = session.get(ScheduledAction, action_id)
        assert action is not None
        claimed = session.execute(
            update(ScheduledAction)
            .where(
                ScheduledAction.id == action_id,
                ScheduledAction.status == action.status,
                ScheduledAction.claimed_by.is_not_distinct_from(action.claimed_by),
            )
            .values(
                status=ActionStatus.RUNNING,
                claimed_by=owner,
                lease_until=wall_clock() + lease,
                updated_at=self.clock(),
                attempts=ScheduledAction.attempts + 1,
            )
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            return None
        session.refresh(action)
        return _claimed(session, action, lease)

    def due(self) -> list[int]:
        """The ids of the playbook actions due now, pending or left running, oldest first;
        while the safety brake holds, without suspend and delete."""
        with self.sessions() as session:
            due = session.scalars(
                select(ScheduledAction.id)
                .where(
                    ScheduledAction.kind == "playbook",
                    ScheduledAction.status.in_((ActionStatus.PENDING, ActionStatus.RUNNING)),
                    ScheduledAction.due_at <= self.clock(),
                )
                .order_by(ScheduledAction.id)
            ).all()
        if self.brake.status() is not None:
            return self._unbraked(due)
        return list(due)

    def _unbraked(self, due: list[int] | Sequence[int]) -> list[int]:
        """The actions that may run while the safety brake holds: not suspend or delete."""
        with self.sessions() as session:
            held = set(
                session.scalars(
                    select(ScheduledAction.id).where(
                        ScheduledAction.id.in_(list(due)),
                        ScheduledAction.name.in_((Phase.SUSPEND.value, Phase.DELETE.value)),
                    )
                )
            )
        if held:
            log.warning("safety brake holds destructive phases", actions=sorted(held))
        return [action_id for action_id in due if action_id not in held]

    def queued(self, account_id: str) -> list[tuple[int, str]]:
        """(action id, phase) of the account's pending playbook actions, oldest first."""
        with self.sessions() as session:
            queued = session.execute(
                select(ScheduledAction.id, ScheduledAction.name)
                .where(
                    ScheduledAction.account_id == account_id,
                    ScheduledAction.kind == "playbook",
                    ScheduledAction.status == ActionStatus.PENDING,
                )
                .order_by(ScheduledAction.id)
            ).all()
        return [(action_id, phase) for action_id, phase in queued]

    def add(self, account_id: str, phase: str) -> int:
        """Queue `phase` for the account, due now; return the action's id.

        Raises UnknownAccountError.
        """
        now = self.clock()
        with self.sessions.begin() as session:
            if session.get(Account, account_id) is None:
                raise UnknownAccountError(f"no account {account_id!r} in the state database")
            action = ScheduledAction(
                account_id=account_id,
                kind="playbook",
                name=phase,
                status=ActionStatus.PENDING,
                due_at=now,
                created_at=now,
                updated_at=now,
                attempts=0,
                priority=phase_priority(phase),
                hosts=action_hosts(session, account_id),
            )
            session.add(action)
            session.flush()
            return action.id

    def reopen_failed(self, account_id: str) -> tuple[int, str, str]:
        """Make the account's newest failed playbook action pending again, with its failed
        runs running and their failed steps pending, so it resumes at the failed step.

        Returns (action id, phase, the account's state). Raises UnknownAccountError, or
        ValueError when nothing failed.
        """
        with self.sessions.begin() as session:
            account = session.get(Account, account_id)
            if account is None:
                raise UnknownAccountError(f"no account {account_id!r} in the state database")
            action = session.scalars(
                select(ScheduledAction)
                .where(
                    ScheduledAction.account_id == account_id,
                    ScheduledAction.kind == "playbook",
                    ScheduledAction.status == ActionStatus.FAILED,
                )
                .order_by(ScheduledAction.id.desc())
            ).first()
            if action is None:
                raise ValueError(f"{account_id} has no failed playbook phase to retry")
            action.status, action.error = ActionStatus.PENDING, None
            action_id, phase, state = action.id, action.name, account.state
            for run in session.scalars(
                select(PlaybookRun).where(
                    PlaybookRun.action_id == action_id, PlaybookRun.status == RunStatus.FAILED
                )
            ):
                run.status = RunStatus.RUNNING
                for record in session.scalars(
                    select(StepRecord).where(
                        StepRecord.run_id == run.id, StepRecord.status == StepStatus.FAILED
                    )
                ):
                    record.status = StepStatus.PENDING
        return action_id, phase, state

    def claim(self, action_id: int, resume: bool = False) -> ClaimedAction | ActionStatus:
        """Claim the action for this process if it is pending (or, with `resume`, left
        running by a process that is gone).

        Returns the claimed action, or the status it has when this process may not run
        it ('running' when another process claimed it first).
        """
        with self.sessions.begin() as session:
            action = session.get(ScheduledAction, action_id)
            assert action is not None
            status, holder = action.status, action.claimed_by
            stale = _is_stale(holder, action.lease_until, wall_clock())
            resumable = status == ActionStatus.RUNNING and resume and stale
            if status != ActionStatus.PENDING and not resumable:
                return status
            claimed = session.execute(
                update(ScheduledAction)
                .where(
                    ScheduledAction.id == action_id,
                    ScheduledAction.status == status,
                    ScheduledAction.claimed_by.is_not_distinct_from(holder),
                )
                .values(
                    status=ActionStatus.RUNNING,
                    claimed_by=this_process(),
                    lease_until=None,  # a command holds it while its process lives
                    updated_at=self.clock(),
                    attempts=ScheduledAction.attempts + 1,
                )
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                return ActionStatus.RUNNING  # another process claimed it between the read and now
            session.refresh(action)
            return _claimed(session, action, None)


def _claimed(session: Session, action: ScheduledAction, lease: timedelta | None) -> ClaimedAction:
    """What the runner needs of a just-claimed action and its account; `lease` is the
    claim's lease (None: a command's claim, held while its process lives)."""
    account = session.get(Account, action.account_id)
    assert account is not None
    return ClaimedAction(
        action_id=action.id,
        phase=action.name,
        account_id=action.account_id,
        since=action.created_at,
        snapshot=stored_snapshot(account),
        suspended_at=account.suspended_at,
        legal_hold=State.LEGAL_HOLD.value in (account.state, account.resume_state),
        owner=action.claimed_by or this_process(),
        lease=lease,
    )


def _is_stale(holder: str | None, lease_until: datetime | None, now: datetime) -> bool:
    """Whether a running action's holder is gone: its lease ran out, or (no lease: a
    command's claim, or one paused for shutdown) the process it names is gone."""
    if lease_until is not None:
        return lease_until < now
    return claim_is_stale(holder)


def _running(session: Session, now: datetime) -> tuple[Running, set[int]]:
    """What runs now, counted over every process (per account, per host), and the ids of
    running actions whose holder is gone (due again, to resume)."""
    running, stale = Running(), set()
    rows = session.execute(
        select(
            ScheduledAction.id,
            ScheduledAction.account_id,
            ScheduledAction.hosts,
            ScheduledAction.claimed_by,
            ScheduledAction.lease_until,
        ).where(ScheduledAction.kind == "playbook", ScheduledAction.status == ActionStatus.RUNNING)
    )
    for action_id, account_id, hosts, holder, lease_until in rows:
        if _is_stale(holder, lease_until, now):
            stale.add(action_id)
            continue
        running.accounts.add(account_id)
        running.per_host.update(split_hosts(hosts))
    return running, stale


def _due(session: Session, moment: datetime, stale: set[int]) -> list[QueuedAction]:
    """The due actions a worker could take, in queue order: the first pending ones and
    every stale running one. On PostgreSQL the rows are locked, skipping those another
    transaction holds."""
    query = (
        select(
            ScheduledAction.id,
            ScheduledAction.account_id,
            ScheduledAction.name,
            ScheduledAction.hosts,
            ScheduledAction.priority,
            ScheduledAction.created_at,
        )
        .where(
            ScheduledAction.kind == "playbook",
            ScheduledAction.due_at <= moment,
            or_(
                ScheduledAction.status == ActionStatus.PENDING,
                ScheduledAction.id.in_(sorted(stale)) if stale else false(),
            ),
        )
        .order_by(ScheduledAction.priority, ScheduledAction.id)
        .limit(_PICK_WINDOW)
        .with_for_update(skip_locked=True, of=ScheduledAction)
    )
    return [
        QueuedAction(action_id, account_id, name, split_hosts(hosts), priority, created_at)
        for action_id, account_id, name, hosts, priority, created_at in session.execute(query)
    ]
