"""Previewing a client notice from an account's current data, without sending or recording it.

Deadlines the account does not have yet (a suspension date for a final notice, a
deletion date for a suspension notice) are filled in as if the notice went out now,
by the functions the policy sets them with (daemon.policy.instants, invariant 3): a
preview prints the instants the real notice would.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from email.message import EmailMessage

from daemon.billing.base import BillingSource
from daemon.config.schema import PolicyConfig, policy_for_plan
from daemon.domain.clock import Clock, system_clock
from daemon.domain.errors import UnknownAccountError
from daemon.domain.notice_kinds import NoticeKind
from daemon.domain.snapshot import AccountSnapshot
from daemon.lifecycle.queries import AccountQueries
from daemon.notices.desk import Composer
from daemon.notices.request import NoticeRequest
from daemon.policy import LifecycleRecord
from daemon.policy.instants import removal_instant, suspension_instant


class NoticePreview:
    """Renders notices for accounts as they would go out now."""

    def __init__(
        self,
        accounts: AccountQueries,
        billing: Callable[[], BillingSource],
        policies: Mapping[str, PolicyConfig],
        compose: Composer,
        clock: Clock = system_clock,
    ) -> None:
        """Take the accounts' read model, a maker of the billing source (asked only for an
        account the state database has no snapshot of, so a preview of a synced account
        needs no billing credentials), the `[policy]` tables, the notice desk's composer
        and the clock."""
        self.accounts = accounts
        self.billing = billing
        self.policies = policies
        self.compose = compose
        self.clock = clock

    def request(self, account_id: str, kind: NoticeKind, number: int = 1) -> NoticeRequest:
        """Return the request notice `kind` (number `number`, for a reminder or a removal
        warning) of the account would be composed from now.

        Raises UnknownAccountError when neither the state database nor billing knows
        the account, and BillingError when billing must be asked and cannot be read.
        """
        stored = self.accounts.find(account_id)
        record = stored.record if stored else LifecycleRecord(account_id=account_id)
        snapshot = stored.snapshot if stored else None
        if snapshot is None:
            snapshot = self.billing().fetch_one(account_id)
        if snapshot is None:
            raise UnknownAccountError(f"no account {account_id!r} in the state database or billing")
        now = self.clock()
        policy = policy_for_plan(self.policies, snapshot.plan)
        record = with_deadlines(record, snapshot, policy, now)
        numbered = number if kind.facts.numbered else 0
        return NoticeRequest(kind, numbered, snapshot, record, policy, now)

    def render(self, account_id: str, kind: NoticeKind, number: int = 1) -> EmailMessage:
        """Return the email `request` describes, composed as the notice desk composes it.

        Raises what `request` raises, and NoticeError when the notice cannot be written.
        """
        return self.compose(self.request(account_id, kind, number)).message()


def with_deadlines(
    record: LifecycleRecord, snapshot: AccountSnapshot, policy: PolicyConfig, now: datetime
) -> LifecycleRecord:
    """Return `record` with the deadlines it lacks filled in as a final notice composed at
    `now` would set them: by the functions the policy uses (invariant 3), so a preview
    prints the instants the real notice would."""
    zone = snapshot.contact.timezone
    suspend_at = record.suspend_at or suspension_instant(now, policy, zone)
    return record.evolve(
        suspend_at=suspend_at,
        delete_at=record.delete_at or removal_instant(suspend_at, policy, zone),
    )
