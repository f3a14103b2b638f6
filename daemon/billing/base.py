"""The interface every billing source implements."""

from __future__ import annotations

from abc import ABC, abstractmethod

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
