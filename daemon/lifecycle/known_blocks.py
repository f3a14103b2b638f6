"""The blocks of billing rows a sync remembers, so that the next passes over those that
did not change (see daemon.billing.flat_blocks and daemon.lifecycle.sync_pass).

A block is remembered (a `BillingBlock` row) only in the transaction of the sync that
listed it, and only when every account it lists that read well was stored by that
sync as read from these very rows: then, while its rows stay the same, nothing about
its accounts needs reading but what the record keeps (how many there are, their
docroots' hashes, the row errors) and the accounts whose deadline came, whose blocks
the state database names. A block not met again, or met and not settled, is
forgotten in the same transaction.
"""

from __future__ import annotations

from array import array
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, delete, insert, select
from sqlalchemy.orm import Session

from daemon.billing.listing import Block, Refused
from daemon.store.membership import one_of
from daemon.store.models import Account, BillingBlock

_blocks = cast(Table, BillingBlock.__table__)
_accounts = cast(Table, Account.__table__)
# Keys named per DELETE: well under SQLite's and PostgreSQL's bound-parameter limits.
_CHUNK = 500


class Known(NamedTuple):
    """A remembered block: its digest, how many accounts it lists that read well, their
    docroots' hashes (own, then ancestors; see TreeIndex.add_hashes) and its errors."""

    digest: str
    accounts: int
    trees: array[int]
    above: array[int]
    errors: list[list[Any]]


class Tally:
    """What a sync learns of a block it lists, account by account, to remember it.

    `settled` turns False when an account of it is left unevaluated for a reason that
    lies outside its rows (the brake, a shared tree): the block is then forgotten and
    listed again next time. `closed` turns True once every listing of it was handed out.
    """

    __slots__ = ("above", "accounts", "block", "closed", "errors", "settled", "trees")

    def __init__(self, block: Block) -> None:
        self.block = block
        self.accounts = 0
        self.trees = array("q")
        self.above: set[int] = set()
        self.errors: list[list[Any]] = []
        self.settled = not block.tainted and block.digest is not None
        self.closed = False

    def seen(self, own: set[int], above: set[int]) -> None:
        """Count one account that read well, with the hashes TreeIndex.add returned."""
        self.accounts += 1
        self.trees.extend(own)
        self.above |= above

    def refused(self, refused: Refused) -> None:
        """Keep a malformed row of the block, by its place in the block."""
        error = refused.error
        number = refused.order - self.block.first
        self.errors.append([number, refused.account_id, error.field, error.message])

    def row(self) -> dict[str, Any]:
        """Return the block's BillingBlock row."""
        return {
            "key": self.block.key,
            "digest": self.block.digest,
            "accounts": self.accounts,
            "trees": self.trees.tobytes(),
            "above": array("q", self.above).tobytes(),
            "errors": self.errors,
        }


def known_blocks(session: Session) -> dict[str, Known]:
    """Return every remembered block by its key."""
    query = select(
        _blocks.c.key,
        _blocks.c.digest,
        _blocks.c.accounts,
        _blocks.c.trees,
        _blocks.c.above,
        _blocks.c.errors,
    )
    known: dict[str, Known] = {}
    for key, digest, accounts, trees, above, errors in session.connection().execute(query):
        known[key] = Known(digest, accounts, _hashes(trees), _hashes(above), errors)
    return known


def _hashes(packed: bytes) -> array[int]:
    """Return the 64-bit hashes packed by Tally.row."""
    hashes = array("q")
    hashes.frombytes(packed)
    return hashes


def blocks_due(session: Session, now: datetime, also: frozenset[str] = frozenset()) -> set[str]:
    """Return the keys of the blocks that hold an account whose deadline came by `now`,
    one whose stored snapshot was not read from its rows by a sync (a wake-up stored a
    fresher read: its raw digest is cleared), or one of the accounts `also` (by the
    state database's record of where each account was last listed). Both the first
    two are indexed queries."""
    column = _accounts.c.billing_block
    due = select(column).where(_accounts.c.next_wake_at <= now, column.is_not(None)).distinct()
    keys = set(session.connection().scalars(due))
    # The condition of the partial index ix_accounts_unread_block, word for word.
    unread = select(column).where(_accounts.c.billing_digest.is_(None), column.is_not(None))
    keys.update(session.connection().scalars(unread.distinct()))
    named = sorted(also)
    for at in range(0, len(named), _CHUNK):
        chunk = named[at : at + _CHUNK]
        query = select(column).where(one_of(session, _accounts.c.id, chunk), column.is_not(None))
        keys.update(session.connection().scalars(query))
    return keys


def remember(session: Session, tallies: list[Tally]) -> None:
    """Write the settled blocks among `tallies`, in place of what was remembered under
    their keys, and forget the others' keys."""
    forget(session, [tally.block.key for tally in tallies])
    rows = [tally.row() for tally in tallies if tally.settled]
    if rows:
        session.connection().execute(insert(_blocks), rows)


def forget(session: Session, keys: list[str]) -> None:
    """Forget the blocks `keys`."""
    for at in range(0, len(keys), _CHUNK):
        chunk = keys[at : at + _CHUNK]
        session.connection().execute(delete(_blocks).where(one_of(session, _blocks.c.key, chunk)))
