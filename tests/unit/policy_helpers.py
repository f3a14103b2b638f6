"""Builders and a virtual-time driver for policy tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from daemon.config.schema import PolicyConfig
from daemon.domain.snapshot import AccountSnapshot, Contact, Instalment, Invoice, LineItem
from daemon.policy import Decision, LifecycleRecord, accept_final_notice, decide

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # a Monday, 10:00 in Berlin
DAY = timedelta(days=1)
ALL_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def anytime_policy(**knobs: object) -> PolicyConfig:
    """The default policy with contact hours switched off, so timeline tests count whole
    days; the contact-hours tests use the real default."""
    return PolicyConfig.model_validate({"quiet_hours": None, "contact_days": ALL_DAYS} | knobs)


def snapshot(
    balance: str = "120.00",
    due_at: datetime = T0,
    *,
    created_at: datetime | None = None,
    exempt: bool = False,
    instalments: tuple[Instalment, ...] = (),
) -> AccountSnapshot:
    """An account owing `balance` EUR on one invoice due at `due_at`."""
    amount = Decimal(balance)
    invoices = (
        (
            Invoice(
                id="INV-1",
                due_at=due_at,
                total=amount,
                amount_due=amount,
                currency="EUR",
                items=(LineItem("Web hosting", amount),),
            ),
        )
        if amount > 0
        else ()
    )
    return AccountSnapshot(
        account_id="acme",
        plan="default",
        contact=Contact("Ada", "ada@example.org", "Europe/Berlin"),
        balance=amount,
        currency="EUR",
        invoices=invoices,
        created_at=created_at,
        exempt=exempt,
        instalments=instalments,
    )


@dataclass
class Step:
    """A transition seen by the driver: day offset from T0, new label, actions."""

    day: float
    label: str
    actions: tuple[str, ...]


class Driver:
    """Moves one account through virtual time, applying decisions as the engine would."""

    def __init__(self, policy: PolicyConfig | None = None, start: datetime = T0) -> None:
        self.policy = policy or anytime_policy()
        self.record = LifecycleRecord(account_id="acme")
        self.now = start
        self.steps: list[Step] = []
        self.decisions: list[Decision] = []

    def settle(self, snap: AccountSnapshot) -> Decision:
        """Apply decisions at the current time until nothing changes; return the last one."""
        for _ in range(10):
            decision = decide(snap, self.record, self.policy, self.now)
            if not decision.changed:
                return decision
            self.decisions.append(decision)
            # The engine's mail server accepts the final notice at once here.
            self.record = accept_final_notice(decision.record, self.now)
            offset = (self.now - T0) / DAY
            self.steps.append(
                Step(offset, decision.record.label, tuple(map(str, decision.actions)))
            )
        raise AssertionError("decisions did not settle")

    def run_until(self, snap: AccountSnapshot, until: datetime) -> None:
        """Follow wake-ups until `until` (inclusive), settling at each."""
        while True:
            decision = self.settle(snap)
            if decision.wake_at is None or decision.wake_at > until:
                self.now = max(self.now, until)
                return
            self.now = decision.wake_at

    def at(self, moment: datetime, snap: AccountSnapshot) -> None:
        """Jump to `moment` (no later than the next wake-up) and settle on a new snapshot,
        e.g. a payment arriving."""
        assert moment >= self.now
        self.now = moment
        self.settle(snap)

    def contact_days(self) -> list[float]:
        """Days (from T0) on which the client was contacted."""
        return [s.day for s in self.steps if any(a.startswith("notice:") for a in s.actions)]
