"""Accounts as a billing source lists them during a streamed sync, read only when needed.

A sync over a million accounts cannot hold every snapshot at once, nor validate every
account when most have not changed since the last sync. So a source hands the engine
one `Listed` account at a time: its id, a digest of its raw billing data, and the
means to read its snapshot and its docroots. The engine compares the digest with the
one stored with the account and reads the snapshot only when they differ.
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


Listing = Listed | Refused | Recalled


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
