"""The interface every billing source implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

from daemon.billing.listing import Listing, listed_from
from daemon.domain.errors import LapseError
from daemon.domain.snapshot import AccountSnapshot, SyncResult


class BillingError(LapseError):
    """The billing source as a whole could not be read (unreachable, bad credentials, ...).

    A single malformed row is not a BillingError: it becomes a RowError in the SyncResult.
    """


class BillingSource(ABC):
    """A place Lapse reads account snapshots from."""

    name: str = "billing"

    @abstractmethod
    def fetch_all(self) -> SyncResult:
        """Read every account.

        Returns the snapshots that could be read and one RowError per skipped row.
        Raises BillingError when the source cannot be read at all.
        """

    def stream(self) -> Iterator[Listing]:
        """List every account for a sync, one at a time (see daemon.billing.listing).

        The same accounts and errors as `fetch_all`. By default it is `fetch_all`
        handed out one by one; a source that can read its rows as they arrive
        overrides it, so that a sync holds a batch of accounts and not all of them.
        Raises BillingError when the source cannot be read at all, before or while
        the accounts are listed.
        """
        result = self.fetch_all()
        return listed_from(result.snapshots, result.errors)

    def fetch_one(self, account_id: str) -> AccountSnapshot | None:
        """Read one account afresh, e.g. right before a destructive step.

        Returns None when the source does not list the account (or its row is malformed).
        Raises BillingError when the source cannot be read at all.
        """
        for snapshot in self.fetch_all().snapshots:
            if snapshot.account_id == account_id:
                return snapshot
        return None

    def close(self) -> None:
        """Release what the source holds open (connection pools); a no-op by default."""
        return  # file and HTTP sources hold nothing between syncs
