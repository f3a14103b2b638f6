"""One pass of a billing sync over a streamed listing, a batch of accounts at a time.

A pass holds one batch of accounts, not the customer base: it reads the batch's
stored digests, reads only the accounts whose raw billing data changed (or whose
deadline came), and evaluates and writes those before taking the next batch. Three
things are only known once every account went by, and each one sends the sync
back to the start in a fresh transaction, which this pass's writes never leave:

- the safety brake trips (more known accounts would turn overdue than it allows):
  the next pass runs braked, so no owing account moves;
- accounts turn out to share a tree (invariant 5) and one of them was evaluated:
  the next pass leaves them out (the accounts the last sync refused so wait for
  the end of the pass before they are evaluated);
- a source recalls accounts it listed from part of their rows.

Each of them is rare, and a source remembers recalled accounts, so a sync is one
pass over billing nearly always.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any, NamedTuple, Protocol, cast

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.orm import Session

from daemon.billing.base import BillingSource
from daemon.billing.listing import Listed, Listing, Recalled, Refused, snapshot_trees
from daemon.billing.overlap import TreeIndex, involved, refuse_overlaps
from daemon.config.schema import PolicyConfig
from daemon.domain.snapshot import AccountSnapshot, RowError
from daemon.domain.states import State
from daemon.domain.stored_snapshot import snapshot_digest, snapshot_to_json
from daemon.lifecycle.brake import SafetyBrake
from daemon.lifecycle.report import SyncReport
from daemon.policy.rules import owes
from daemon.store.models import Account

# Accounts listed, looked up and written per round trip: bounds memory, not speed.
BATCH = 2000

_accounts = cast(Table, Account.__table__)
_REMEMBER_DIGEST = (
    update(_accounts)
    .where(_accounts.c.id == bindparam("key"))
    .values(billing_digest=bindparam("digest"))
)


class _Stored(NamedTuple):
    """What the state database holds of a listed account, to tell whether it moved."""

    billing_digest: str | None
    snapshot_hash: str
    next_wake_at: datetime | None
    state: str


class Due(NamedTuple):
    """An account to evaluate: its snapshot, as JSON, the snapshot's digest and the
    digest of the raw data it was read from."""

    snapshot: AccountSnapshot
    data: dict[str, Any]
    digest: str
    billing_digest: str | None


class Evaluator(Protocol):
    """What a pass needs of the lifecycle engine."""

    billing: BillingSource
    brake: SafetyBrake

    def policy_for(self, plan: str) -> PolicyConfig:
        """Return the effective policy of a plan."""
        ...

    def turns_overdue(self, snapshot: AccountSnapshot, now: datetime) -> bool:
        """Whether an active account would turn overdue with this snapshot."""
        ...

    def evaluate_batch(
        self, session: Session, due: list[Due], now: datetime, report: SyncReport
    ) -> None:
        """Evaluate and write a batch of due accounts."""
        ...


@dataclass
class Plan:
    """What a pass knows before it starts: accounts to leave out (with the errors that say
    why) and whether the brake holds owing accounts."""

    refused: dict[str, RowError] = field(default_factory=dict)
    # Accounts the last sync refused for sharing a tree: read, but evaluated only once
    # the end shows they no longer do, so a clash left standing does not start every
    # sync over.
    held: frozenset[str] = frozenset()
    braked: bool = False
    # When the brake tripped in an earlier pass: how many would have turned overdue.
    tripped_by: int | None = None


@dataclass
class Outcome:
    """How a pass ended: `again` is None when its writes stand, else the plan to start over."""

    again: Plan | None = None
    errors: list[Refused] = field(default_factory=list)
    seen: int = 0


def run_pass(
    engine: Evaluator,
    session: Session,
    plan: Plan,
    now: datetime,
    report: SyncReport,
) -> Outcome:
    """Run one pass in `session`; see the module docstring. The caller commits the
    session when `Outcome.again` is None and rolls it back otherwise."""
    brake = engine.brake
    known = session.scalar(select(func.count()).select_from(Account)) or 0
    if plan.tripped_by is not None:
        brake.check(session, plan.tripped_by, known, now)
        braked, watching = True, False
    else:
        gate = brake.gate(session, now)
        braked, watching = bool(gate) or plan.braked, gate is None and not plan.braked
    report.braked = braked
    outcome = Outcome()
    trees = TreeIndex()
    # Hashes of the accounts evaluated, for the overlap check at the end: an array, not a
    # set (a first sync evaluates every account, and only the end looks at them).
    acted = array("q")
    entering = 0
    tripped = False
    waiting: list[Due] = []  # held accounts that moved, evaluated once cleared
    for batch in _batches(engine.billing.stream(), BATCH):
        listed: list[Listed] = []
        for listing in batch:
            if isinstance(listing, Recalled):
                return Outcome(again=plan)
            if isinstance(listing, Refused):
                outcome.errors.append(listing)
            elif listing.account_id not in plan.refused:
                listed.append(listing)
        stored = _stored(session, [listing.account_id for listing in listed])
        due: list[Due] = []
        unchanged: list[dict[str, str]] = []
        for listing in listed:
            known_row = stored.get(listing.account_id)
            if known_row is not None and _untouched(listing, known_row, now):
                outcome.seen += 1
                trees.add(listing.trees())
                continue
            snapshot = listing.read()
            if isinstance(snapshot, Refused):
                outcome.errors.append(snapshot)
                continue
            outcome.seen += 1
            trees.add(snapshot_trees(snapshot))
            data = snapshot_to_json(snapshot)
            digest = snapshot_digest(data)
            if listing.account_id in plan.held and (
                known_row is None or _moved(known_row, digest, now)
            ):
                waiting.append(Due(snapshot, data, digest, listing.digest))
            elif known_row is None or _moved(known_row, digest, now):
                due.append(Due(snapshot, data, digest, listing.digest))
                if known_row is not None and known_row.state == State.ACTIVE.value:
                    entering += engine.turns_overdue(snapshot, now)
            elif listing.digest is not None:
                unchanged.append({"key": listing.account_id, "digest": listing.digest})
        if watching and not tripped and brake.trips(entering, known):
            tripped = True  # counted to the end, for the brake's record
        if tripped:
            continue
        if unchanged:
            # The snapshot read the same: remember its raw digest, so the next sync
            # need not read it. A plain executemany, not the ORM's: the record did
            # not move, so neither does its version.
            session.execute(_REMEMBER_DIGEST, unchanged)
        if braked:
            due = [d for d in due if not owes(d.snapshot, engine.policy_for(d.snapshot.plan))]
        acted.extend(hash(d.snapshot.account_id) for d in due)
        engine.evaluate_batch(session, due, now, report)
    if tripped:
        return Outcome(again=Plan(plan.refused, braked=True, tripped_by=entering))
    suspects = trees.suspects()
    refused = _overlapping(engine, suspects, plan) if suspects else {}
    if refused and not {hash(account_id) for account_id in refused}.isdisjoint(acted):
        again = Plan({**plan.refused, **refused}, plan.held, plan.braked, plan.tripped_by)
        return Outcome(again=again)
    outcome.seen -= len(refused)
    plan.refused.update(refused)
    cleared = [d for d in waiting if d.snapshot.account_id not in refused]
    if braked:
        cleared = [d for d in cleared if not owes(d.snapshot, engine.policy_for(d.snapshot.plan))]
    engine.evaluate_batch(session, cleared, now, report)
    return outcome


def _untouched(listing: Listed, known: _Stored, now: datetime) -> bool:
    """Whether a listed account is as its last sync read it, raw data and all, and no
    deadline of its came: then nothing about it needs reading."""
    if listing.digest is None or listing.digest != known.billing_digest:
        return False
    return known.next_wake_at is None or known.next_wake_at > now


def _moved(known: _Stored, digest: str, now: datetime) -> bool:
    """Whether a known account must be evaluated: its snapshot changed or it reached its
    next deadline. Otherwise the policy would decide exactly what it decided last time
    (a decision depends only on snapshot, record and time, and the record's next
    deadline is when time starts to matter)."""
    wake_at = known.next_wake_at
    return known.snapshot_hash != digest or (wake_at is not None and wake_at <= now)


def _stored(session: Session, ids: list[str]) -> dict[str, _Stored]:
    """Return what the state database holds of the accounts `ids` that it knows."""
    if not ids:
        return {}
    columns = _accounts.c
    query = select(
        columns.id,
        columns.billing_digest,
        columns.snapshot_hash,
        columns.next_wake_at,
        columns.state,
    ).where(columns.id.in_(ids))
    # Through the session's connection, as plain rows: the ORM's row loading cost more
    # than the query itself, for every account of every sync.
    rows = session.connection().execute(query)
    return {row[0]: _Stored(*row[1:]) for row in rows}


def _overlapping(engine: Evaluator, suspects: set[int], plan: Plan) -> dict[str, RowError]:
    """Read billing again for the accounts whose trees carry a suspect hash, and return
    those whose trees really overlap another's, by id, with the error naming why."""
    candidates: list[tuple[str, tuple[tuple[str, str], ...]]] = []
    for listing in engine.billing.stream():
        if not isinstance(listing, Listed) or listing.account_id in plan.refused:
            continue
        if not involved(listing.trees(), suspects):
            continue
        snapshot = listing.read()
        if not isinstance(snapshot, Refused):
            candidates.append((listing.account_id, snapshot_trees(snapshot)))
    errors = refuse_overlaps(candidates, engine.billing.name)
    return {error.row: error for error in errors}


def _batches(listings: Iterable[Listing], size: int) -> Iterator[list[Listing]]:
    """Yield consecutive lists of at most `size` listings."""
    iterator = iter(listings)
    while batch := list(islice(iterator, size)):
        yield batch
