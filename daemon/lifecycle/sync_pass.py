"""One pass of a billing sync over a streamed listing, a batch of accounts at a time.

A pass holds one batch of accounts, not the customer base: it reads the batch's
stored digests, reads only the accounts whose raw billing data changed (or whose
deadline came), and evaluates and writes those before taking the next batch.

A source that cuts its rows into blocks (daemon.billing.flat_blocks) lets a pass go
further: a block whose rows are those of a block the last sync remembered, and that
holds no account whose deadline came, is not listed at all; what the pass needs of
its accounts (how many, their docroots, its row errors) comes from the record (see
daemon.lifecycle.known_blocks). The blocks listed are remembered anew, in the
pass's own transaction. Three
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
from typing import Any, NamedTuple, Protocol, TypeVar, cast

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.orm import Session

from daemon.billing.base import BillingSource
from daemon.billing.listing import Block, Listed, Listing, Recalled, Refused, snapshot_trees
from daemon.billing.overlap import TreeIndex, involved, refuse_overlaps
from daemon.config.schema import PolicyConfig
from daemon.domain.snapshot import AccountSnapshot, RowError
from daemon.domain.states import State
from daemon.domain.stored_snapshot import snapshot_digest, snapshot_to_json
from daemon.lifecycle.brake import SafetyBrake
from daemon.lifecycle.known_blocks import Known, Tally, blocks_due, forget, known_blocks, remember
from daemon.lifecycle.report import SyncReport
from daemon.policy.rules import owes
from daemon.store.membership import one_of
from daemon.store.models import Account

T = TypeVar("T")

# Accounts listed, looked up and written per round trip: bounds memory, not speed.
BATCH = 2000

_accounts = cast(Table, Account.__table__)
_REMEMBER_DIGEST = (
    update(_accounts)
    .where(_accounts.c.id == bindparam("key"))
    .values(billing_digest=bindparam("digest"), billing_block=bindparam("block"))
)


class _Stored(NamedTuple):
    """What the state database holds of a listed account, to tell whether it moved."""

    billing_digest: str | None
    snapshot_hash: str
    next_wake_at: datetime | None
    state: str
    billing_block: str | None


class Due(NamedTuple):
    """An account to evaluate: its snapshot, as JSON, the snapshot's digest, the
    digest of the raw data it was read from and the block it was listed in."""

    snapshot: AccountSnapshot
    data: dict[str, Any]
    digest: str
    billing_digest: str | None
    block: str | None = None


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
    blocks = _Blocks(session, now, plan.refused)
    # Hashes of the accounts evaluated, for the overlap check at the end: an array, not a
    # set (a first sync evaluates every account, and only the end looks at them).
    acted = array("q")
    entering = 0
    tripped = False
    # Held accounts that moved, evaluated once cleared, with the block that lists them.
    waiting: list[tuple[Due, Tally | None]] = []
    for batch in _batches(blocks.expand(engine.billing.stream(), outcome, trees), BATCH):
        listed: list[tuple[Listed, Tally | None]] = []
        for listing, tally in batch:
            if isinstance(listing, Recalled):
                return Outcome(again=plan)
            if isinstance(listing, Refused):
                outcome.errors.append(listing)
                if tally is not None:
                    tally.refused(listing)
            elif listing.account_id in plan.refused:
                blocks.unsettle(tally)
            else:
                listed.append((listing, tally))
        stored = _stored(session, [listing.account_id for listing, _tally in listed])
        due: list[tuple[Due, Tally | None]] = []
        unchanged: list[dict[str, str | None]] = []
        for listing, tally in listed:
            key = tally.block.key if tally is not None else None
            known_row = stored.get(listing.account_id)
            if known_row is not None and _untouched(listing, known_row, now):
                outcome.seen += 1
                hashes = trees.add(listing.trees())
                if tally is not None:
                    tally.seen(*hashes)
                    if known_row.billing_block != key:
                        unchanged.append(_remembered(listing, key))
                continue
            snapshot = listing.read()
            if isinstance(snapshot, Refused):
                outcome.errors.append(snapshot)
                if tally is not None:
                    tally.refused(snapshot)
                continue
            outcome.seen += 1
            hashes = trees.add(snapshot_trees(snapshot))
            if tally is not None:
                tally.seen(*hashes)
            data = snapshot_to_json(snapshot)
            digest = snapshot_digest(data)
            entry = Due(snapshot, data, digest, listing.digest, key)
            if listing.account_id in plan.held and (
                known_row is None or _moved(known_row, digest, now)
            ):
                waiting.append((entry, tally))
            elif known_row is None or _moved(known_row, digest, now):
                due.append((entry, tally))
                if known_row is not None and known_row.state == State.ACTIVE.value:
                    entering += engine.turns_overdue(snapshot, now)
            elif listing.digest is not None or known_row.billing_block != key:
                unchanged.append(_remembered(listing, key))
        if watching and not tripped and brake.trips(entering, known):
            tripped = True  # counted to the end, for the brake's record
        if tripped:
            continue
        if unchanged:
            # The snapshot read the same: remember its raw digest, so the next sync
            # need not read it, and its block. A plain executemany, not the ORM's: the
            # record did not move, so neither does its version.
            session.execute(_REMEMBER_DIGEST, unchanged)
        if braked:
            due = _unbraked(engine, blocks, due)
        acted.extend(hash(entry.snapshot.account_id) for entry, _tally in due)
        engine.evaluate_batch(session, [entry for entry, _tally in due], now, report)
        blocks.remember_closed()
    if tripped:
        return Outcome(again=Plan(plan.refused, braked=True, tripped_by=entering))
    suspects = trees.suspects()
    refused = _overlapping(engine, suspects, plan, blocks.known) if suspects else {}
    if refused and not {hash(account_id) for account_id in refused}.isdisjoint(acted):
        again = Plan({**plan.refused, **refused}, plan.held, plan.braked, plan.tripped_by)
        return Outcome(again=again)
    outcome.seen -= len(refused)
    plan.refused.update(refused)
    cleared = []
    for entry, tally in waiting:
        if entry.snapshot.account_id in refused:
            blocks.unsettle(tally)
        else:
            cleared.append((entry, tally))
    if braked:
        cleared = _unbraked(engine, blocks, cleared)
    engine.evaluate_batch(session, [entry for entry, _tally in cleared], now, report)
    blocks.finish()
    return outcome


class _Blocks:
    """The blocks of one pass: which the last sync remembered, which must be listed
    though unchanged, and the tallies of those listed, remembered as they close."""

    def __init__(self, session: Session, now: datetime, refused: dict[str, RowError]) -> None:
        self.session = session
        self.known = known_blocks(session)
        # Blocks holding an account whose deadline came, or one the pass leaves out
        # (listed, so that it is left out of the count and the trees too).
        self.due = blocks_due(session, now, frozenset(refused))
        self.kept: set[str] = set()  # met unchanged, or remembered anew
        self.met: set[str] = set()
        self.open: list[Tally] = []
        self.unsettled: list[str] = []  # remembered, then unsettled at the end

    def expand(
        self, stream: Iterable[Listing], outcome: Outcome, trees: TreeIndex
    ) -> Iterator[tuple[Listed | Refused | Recalled, Tally | None]]:
        """Yield every listing of `stream` with the tally of its block (None outside
        blocks), passing over the blocks the last sync remembered as they are: their
        accounts counted in `outcome.seen`, their trees in `trees`, their errors in
        `outcome.errors`."""
        for item in stream:
            if not isinstance(item, Block):
                yield item, None
                continue
            doubled = item.key in self.met
            self.met.add(item.key)
            known = None if doubled else self.passes_over(item)
            if known is not None:
                self.kept.add(item.key)
                outcome.seen += known.accounts
                trees.add_hashes(known.trees, known.above)
                for number, account_id, field_name, message in known.errors:
                    error = item.refusal(item.first + number, account_id, field_name, message)
                    outcome.errors.append(error)
                continue
            tally = Tally(item)
            if doubled:  # two blocks under one name: neither is remembered
                self.unsettle(tally)
                self.unsettled.append(item.key)
                self.kept.discard(item.key)
            self.open.append(tally)
            for listing in item.listings():
                yield listing, tally
            tally.closed = True

    def passes_over(self, block: Block) -> Known | None:
        """Return the record of `block` when the pass may pass over it, else None."""
        if block.tainted or block.digest is None or block.key in self.due:
            return None
        known = self.known.get(block.key)
        if known is None or known.digest != block.digest:
            return None
        return known

    def unsettle(self, tally: Tally | None) -> None:
        """Mark a listed block as holding an account the pass leaves unevaluated for a
        reason outside its rows: it is not remembered (forgotten at the end if it was
        already), so the next sync lists it again."""
        if tally is None or not tally.settled:
            return
        tally.settled = False
        if tally.closed and tally not in self.open:
            # Remembered already (its account waited for the end of the pass).
            self.unsettled.append(tally.block.key)
            self.kept.discard(tally.block.key)

    def remember_closed(self) -> None:
        """Remember the blocks every listing of which was handed out (and so evaluated:
        called after each batch)."""
        closed = [tally for tally in self.open if tally.closed]
        if not closed:
            return
        self.open = [tally for tally in self.open if not tally.closed]
        remember(self.session, closed)
        for tally in closed:
            if tally.settled:
                self.kept.add(tally.block.key)

    def finish(self) -> None:
        """At the end of a pass whose writes stand: remember the last blocks, forget
        those unsettled since they were remembered and those not met."""
        for tally in self.open:
            tally.closed = True
        self.remember_closed()
        stale = [key for key in self.known if key not in self.kept]
        forget(self.session, stale + self.unsettled)


def _remembered(listing: Listed, block: str | None) -> dict[str, str | None]:
    """The parameters of _REMEMBER_DIGEST for an account as listed in `block`."""
    return {"key": listing.account_id, "digest": listing.digest, "block": block}


def _unbraked(
    engine: Evaluator, blocks: _Blocks, due: list[tuple[Due, Tally | None]]
) -> list[tuple[Due, Tally | None]]:
    """Return the entries of `due` a braked pass evaluates: those that owe nothing. The
    others' blocks are unsettled."""
    kept = []
    for entry, tally in due:
        if owes(entry.snapshot, engine.policy_for(entry.snapshot.plan)):
            blocks.unsettle(tally)
        else:
            kept.append((entry, tally))
    return kept


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
        columns.billing_block,
    ).where(one_of(session, columns.id, ids))
    # Through the session's connection, as plain rows: the ORM's row loading cost more
    # than the query itself, for every account of every sync.
    rows = session.connection().execute(query)
    return {row[0]: _Stored(*row[1:]) for row in rows}


def _overlapping(
    engine: Evaluator, suspects: set[int], plan: Plan, known: dict[str, Known]
) -> dict[str, RowError]:
    """Read billing again for the accounts whose trees carry a suspect hash, and return
    those whose trees really overlap another's, by id, with the error naming why. A
    block remembered as it is, none of whose trees is suspect, is passed over."""
    candidates: list[tuple[str, tuple[tuple[str, str], ...]]] = []
    for listing in _every_listing(engine.billing.stream(), suspects, known):
        if not isinstance(listing, Listed) or listing.account_id in plan.refused:
            continue
        if not involved(listing.trees(), suspects):
            continue
        snapshot = listing.read()
        if not isinstance(snapshot, Refused):
            candidates.append((listing.account_id, snapshot_trees(snapshot)))
    errors = refuse_overlaps(candidates, engine.billing.name)
    return {error.row: error for error in errors}


def _every_listing(
    stream: Iterable[Listing], suspects: set[int], known: dict[str, Known]
) -> Iterator[Listing]:
    """The listings of `stream`, those of its blocks included, but for the remembered
    blocks whose trees carry no suspect hash."""
    for item in stream:
        if not isinstance(item, Block):
            yield item
            continue
        record = known.get(item.key)
        if (
            record is not None
            and not item.tainted
            and record.digest == item.digest
            and suspects.isdisjoint(record.trees)
            and suspects.isdisjoint(record.above)
        ):
            continue
        yield from item.listings()


def _batches(listings: Iterable[T], size: int) -> Iterator[list[T]]:
    """Yield consecutive lists of at most `size` listings."""
    iterator = iter(listings)
    while batch := list(islice(iterator, size)):
        yield batch
