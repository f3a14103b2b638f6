"""A queued phase counts against every host the account's services are on, through the
state database: what is stored with the action, what claiming counts, what status shows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from daemon.domain.snapshot import AccountSnapshot, Contact, Service
from daemon.domain.stored_snapshot import snapshot_to_json
from daemon.playbooks.picking import host_limits
from daemon.runtime.app import App
from daemon.store.models import Account, ScheduledAction
from daemon.store.records import action_hosts, split_hosts

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _account(account_id: str, hosts: list[str]) -> Account:
    services = tuple(
        Service(host, f"u{n}", f"/srv/{account_id}/{n}") for n, host in enumerate(hosts)
    )
    contact = Contact("Client", "client@example.com")
    snapshot = AccountSnapshot(account_id, "standard", contact, Decimal(0), "EUR", (), services)
    return Account(
        id=account_id,
        plan="standard",
        state="active",
        balance=Decimal(0),
        currency="EUR",
        snapshot=snapshot_to_json(snapshot),
        snapshot_hash="0" * 64,
        first_seen_at=NOW,
        updated_at=NOW,
    )


def test_an_account_on_two_hosts_queues_its_phase_against_both(app: App) -> None:
    with app.sessions.begin() as session:
        session.add(_account("site-and-db", ["web1", "db1", "web1"]))
        session.add(_account("no-services", []))
    with app.sessions() as session:
        assert action_hosts(session, "site-and-db") == "web1 db1"  # each once, in order
        assert action_hosts(session, "no-services") is None
    assert split_hosts("web1 db1") == ("web1", "db1") and split_hosts(None) == ()


def test_a_full_second_host_holds_the_phase_back(app: App) -> None:
    """db1 takes one phase at a time: the second account's suspension waits although
    its site's host, web1 or web2, has room; status counts the running one on both."""
    with app.sessions.begin() as session:
        session.add(_account("a", ["web1", "db1"]))
        session.add(_account("b", ["web2", "db1"]))
        session.add(_account("c", ["web2"]))
    queue = app.runner.queue
    for account in ("a", "b", "c"):
        queue.add(account, "verify")
    limits = host_limits({"db1": 1}, 2)
    first = queue.claim_next("test", timedelta(minutes=5), limits)
    second = queue.claim_next("test", timedelta(minutes=5), limits)
    assert first is not None and second is not None
    assert {first.account_id, second.account_id} == {"a", "c"}  # b waits for db1
    assert queue.claim_next("test", timedelta(minutes=5), limits) is None
    figures = app.readers.queue.figures()
    assert figures.running[("verify", "db1")] == 1
    assert figures.running[("verify", "web1")] == 1
    assert figures.queued[("verify", "db1")] == 1 and figures.queued[("verify", "web2")] == 1
    with app.sessions() as session:
        stored = {row.account_id: row.hosts for row in session.query(ScheduledAction)}
    assert stored == {"a": "web1 db1", "b": "web2 db1", "c": "web2"}
