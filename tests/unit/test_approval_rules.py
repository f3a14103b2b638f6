"""Which phases wait for a person (the plan's `approve`), and what a rejection does."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from daemon.config.schema import PolicyConfig
from daemon.domain.states import State
from daemon.playbooks.approvals import needs_approval
from daemon.policy import LifecycleRecord, commands

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("approve", "over", "phase", "balance", "currency", "waits"),
    [
        ([], {}, "delete", "10", "EUR", False),
        (["delete"], {}, "delete", "10", "EUR", True),
        (["delete"], {}, "suspend", "10", "EUR", False),
        (["delete"], {}, "unsuspend", "10", "EUR", False),
        (["suspend"], {}, "suspend", "1", "EUR", True),
        (["suspend"], {"EUR": "500"}, "suspend", "499.99", "EUR", False),
        (["suspend"], {"EUR": "500"}, "suspend", "500", "EUR", True),
        (["suspend"], {"EUR": "500"}, "suspend", "1", "JPY", True),  # a currency not named
    ],
)
def test_needs_approval(
    approve: list[str], over: dict[str, str], phase: str, balance: str, currency: str, waits: bool
) -> None:
    policy = PolicyConfig.model_validate({"approve": approve, "approve_suspend_over": over})
    assert needs_approval(policy, phase, Decimal(balance), currency) is waits


def test_a_rejected_deletion_goes_on_hold_from_where_it_was() -> None:
    record = LifecycleRecord(account_id="a1", state=State.DELETED)
    decision = commands.reject(
        record, NOW, phase="delete", back_to=State.REMOVAL_WARNED, reason="paying Monday"
    )
    assert decision.record.state is State.ON_HOLD
    assert decision.record.resume_state is State.REMOVAL_WARNED
    assert decision.record.paused_since == NOW
    assert decision.reason == "delete rejected: paying Monday"
    assert decision.actions == ()


def test_a_rejection_of_an_account_that_moved_on_is_refused() -> None:
    record = LifecycleRecord(account_id="a1", state=State.ACTIVE)
    with pytest.raises(commands.CommandRefusedError, match="not waiting for its delete"):
        commands.reject(record, NOW, phase="delete", back_to=State.SUSPENDED, reason="x")
