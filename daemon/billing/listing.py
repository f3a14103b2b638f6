"""Accounts as a billing source lists them during a streamed sync, read only when needed.

A sync over a million accounts cannot hold every snapshot at once, nor validate every
account when most have not changed since the last sync. So a source hands the engine
one `Listed` account at a time: its id, a digest of its raw billing data, and the
means to read its snapshot and its docroots. The engine compares the digest with the
one stored with the account and reads the snapshot only when they differ.

A source may go one step further and hand out its accounts in blocks (`Block`): runs
of rows digested whole, whose accounts are listed only when the engine asks, so that
a sync passes over a run the last sync remembered without looking at its accounts.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from daemon.domain.snapshot import AccountSnapshot, RowError

# (host, docroot) of one service of an account.
Tree = tuple[str, str]


class Listed(ABC):
    """One account a source listed; `digest` is None when the source has no raw form to
    digest (then the engine compares the snapshot's own digest)."""

    __slots__ = ("account_id", "digest")

    def __init__(self, account_id: str, digest: str | None) -> None:
        self.account_id = account_id
        self.digest = digest

    @abstractmethod
    def read(self) -> AccountSnapshot | Refused:
        """Return the account's snapshot, or why it cannot be read."""

    @abstractmethod
    def trees(self) -> tuple[Tree, ...]:
        """Return the (host, docroot) of each service with a docroot, without reading the
        whole account. Only asked of an account whose data read well at an earlier sync."""


class ReadListed(Listed):
    """An account whose snapshot the source has already read."""

    __slots__ = ("snapshot",)

    def __init__(self, snapshot: AccountSnapshot) -> None:
        super().__init__(snapshot.account_id, None)
        self.snapshot = snapshot

    def read(self) -> AccountSnapshot:
        """Return the snapshot read already."""
        return self.snapshot

    def trees(self) -> tuple[Tree, ...]:
        """Return the docroots of the snapshot's services."""
        return snapshot_trees(self.snapshot)


@dataclass(frozen=True, slots=True)
class Refused:
    """A skipped row; `order` sorts the errors of one source the way it numbers rows, and
    `account_id` names the account it belongs to when it has one."""

    error: RowError
    order: int = 0
    account_id: str | None = None


@dataclass(frozen=True, slots=True)
class Recalled:
    """Accounts listed earlier in this stream whose rows turned out not to be adjacent:
    what was listed for them was partial, and the stream lists them again in full after
    this marker. A consumer that acted on a partial listing must start over; `ids` tells
    the source to read them apart from the start next time."""

    ids: frozenset[str]


class Block(ABC):
    """A run of consecutive billing rows, whole accounts only, handed out before any of its
    accounts is listed, so that a sync can pass over a run it already knows.

    `key` names the run (the id of its last account) and `digest` its raw rows, cells of
    every row in order (None when a cell does not serialise: the run is then listed every
    time). A `tainted` run holds rows whose meaning depends on rows outside it (an account
    read apart, or one broken by a row before the run): it is always listed and never
    remembered. `first` is the number of its first row.
    """

    __slots__ = ("digest", "first", "key", "tainted")

    def __init__(self, key: str, digest: str | None, first: int, tainted: bool) -> None:
        self.key = key
        self.digest = digest
        self.first = first
        self.tainted = tainted

    @abstractmethod
    def listings(self) -> Iterator[Listed | Refused]:
        """List the run's accounts and its malformed rows, as a stream without blocks would."""

    @abstractmethod
    def refusal(self, number: int, account_id: str | None, field: str, message: str) -> Refused:
        """Return the listing of an error found on row `number` of this run (a remembered
        error, reported again when the run is passed over)."""


Listing = Listed | Refused | Recalled | Block


def every_account(listings: Iterable[Listing]) -> Iterator[Listed | Refused | Recalled]:
    """Return `listings` with every block's listings in its place, for a consumer that
    takes each account whatever it knows of the blocks."""
    for listing in listings:
        if isinstance(listing, Block):
            yield from listing.listings()
        else:
            yield listing


def snapshot_trees(snapshot: AccountSnapshot) -> tuple[Tree, ...]:
    """Return the (host, docroot) of each of the snapshot's services with a docroot."""
    return tuple(
        (service.host, service.docroot) for service in snapshot.services if service.docroot
    )


def listed_from(
    snapshots: Iterable[AccountSnapshot], errors: Iterable[RowError]
) -> Iterator[Listing]:
    """List snapshots read already, then their source's errors in order."""
    for snapshot in snapshots:
        yield ReadListed(snapshot)
    for number, error in enumerate(errors):
        yield Refused(error, number)
