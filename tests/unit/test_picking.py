"""Which due phase a free worker takes: the rules of daemon.playbooks.picking.pick_next."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from daemon.domain.phases import PHASE_PRIORITY, phase_priority
from daemon.playbooks.picking import QueuedAction, Running, host_limits, pick_next

T0 = datetime(2026, 12, 1, tzinfo=UTC)
LIMITS = host_limits({"web1": 2, "web2": 1}, 2)


def _action(action_id: int, account: str, phase: str, host: str | None = "web1", age: int = 0):  # type: ignore[no-untyped-def]
    hosts = tuple(host.split()) if host else ()
    return QueuedAction(
        action_id, account, phase, hosts, phase_priority(phase), T0 - timedelta(minutes=age)
    )


def test_unsuspend_goes_before_suspend_delete_verify_and_restore() -> None:
    queued = [
        _action(1, "a", "restore", age=50),
        _action(2, "b", "verify", age=40),
        _action(3, "c", "delete", age=30),
        _action(4, "d", "suspend", age=20),
        _action(5, "e", "unsuspend", age=0),
    ]
    order = []
    running = Running()
    while (picked := pick_next(queued, running, lambda _host: 99)) is not None:
        order.append(picked.phase)
        queued.remove(picked)
    assert order == ["unsuspend", "suspend", "delete", "verify", "restore"]
    assert sorted(PHASE_PRIORITY, key=phase_priority) == order


def test_within_a_priority_the_oldest_goes_first() -> None:
    queued = [_action(7, "young", "suspend", age=1), _action(9, "old", "suspend", age=10)]
    picked = pick_next(queued, Running(), LIMITS)
    assert picked is not None and picked.account_id == "old"


def test_never_two_phases_of_one_account() -> None:
    queued = [_action(1, "a", "unsuspend"), _action(2, "b", "suspend")]
    picked = pick_next(queued, Running(accounts={"a"}), LIMITS)
    assert picked is not None and picked.account_id == "b"
    assert pick_next(queued[:1], Running(accounts={"a"}), LIMITS) is None


def test_a_host_at_its_limit_takes_no_more_and_others_go_on() -> None:
    queued = [_action(1, "a", "verify", "web2"), _action(2, "b", "suspend", "web1")]
    busy = Running(per_host=Counter({"web2": 1, "web1": 1}))
    picked = pick_next(queued, busy, LIMITS)
    assert picked is not None and picked.hosts == ("web1",)  # web2's limit is 1, web1's 2
    full = Running(per_host=Counter({"web2": 1, "web1": 2}))
    assert pick_next(queued, full, LIMITS) is None
    # A host the config no longer names gets the default; no host counts against none.
    assert LIMITS("gone") == 2
    assert pick_next([_action(3, "c", "verify", None)], full, LIMITS) is not None


def test_a_phase_on_two_hosts_waits_while_either_is_full() -> None:
    """A site on web1 with its database on web2: its phase works on both, so it counts
    against both limits and starts only when both have a slot."""
    queued = [_action(1, "a", "suspend", "web1 web2")]
    assert pick_next(queued, Running(per_host=Counter({"web2": 1})), LIMITS) is None
    assert pick_next(queued, Running(per_host=Counter({"web1": 2})), LIMITS) is None
    assert pick_next(queued, Running(per_host=Counter({"web1": 1})), LIMITS) is not None


def test_a_full_host_keeps_one_slot_for_a_paying_clients_unsuspend() -> None:
    """Every slot of web2 (limit 1) busy with a suspension: an unsuspend still starts
    there, once; a second unsuspend, and any other phase, waits."""
    full = Running(per_host=Counter({"web2": 1}))
    queued = [_action(1, "a", "suspend", "web2", age=9), _action(2, "b", "unsuspend", "web2")]
    picked = pick_next(queued, full, LIMITS)
    assert picked is not None and picked.phase == "unsuspend"
    assert pick_next(queued[:1], full, LIMITS) is None
    beyond = Running(per_host=Counter({"web2": 2}))
    assert pick_next([_action(3, "c", "unsuspend", "web2")], beyond, LIMITS) is None


def test_the_brake_holds_suspend_and_delete_only() -> None:
    queued = [
        _action(1, "a", "suspend", age=9),
        _action(2, "b", "delete"),
        _action(3, "c", "verify"),
    ]
    picked = pick_next(queued, Running(), LIMITS, braked=True)
    assert picked is not None and picked.phase == "verify"


def test_the_reserved_worker_takes_only_unsuspend() -> None:
    queued = [_action(1, "a", "suspend", age=9), _action(2, "b", "unsuspend")]
    assert pick_next(queued[:1], Running(), LIMITS, only={"unsuspend"}) is None
    picked = pick_next(queued, Running(), LIMITS, only={"unsuspend"})
    assert picked is not None and picked.phase == "unsuspend"


def test_a_refusing_hook_keeps_an_action_waiting() -> None:
    queued = [_action(1, "a", "delete", age=9), _action(2, "b", "delete")]
    picked = pick_next(queued, Running(), LIMITS, allow=lambda action: action.account_id != "a")
    assert picked is not None and picked.account_id == "b"
