"""The audit log: every decision and action chained; any edit or removal is found."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, text

from daemon.domain.clock import VirtualClock
from daemon.runtime.app import App
from daemon.store.audit import verify_chain
from daemon.store.db import session_factory
from daemon.store.models import AuditEntry, DaemonFlag
from tests.lab.engine_helpers import account, make_app, run_days, write_billing

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def app(tmp_path: Path, state_url: str) -> App:
    """An app whose account went through reminders and a final notice to suspension."""
    write_billing(tmp_path / "billing.json", [account("a1", START), account("a2", None)])
    clock = VirtualClock(START)
    made = make_app(tmp_path, state_url, clock, anytime=True)
    made.lifecycle.sync()
    run_days(made, clock, 40)
    made.runner.run_pending()  # the suspend phase (no services): its notice follows it
    return made


def _entries(app: App) -> list[AuditEntry]:
    with app.sessions() as session:
        return list(session.scalars(select(AuditEntry).order_by(AuditEntry.seq)))


def test_every_transition_and_notice_is_chained(app: App) -> None:
    entries = _entries(app)
    summaries = [(e.kind, e.summary) for e in entries if e.account_id == "a1"]
    # overdue, three reminders, the final notice and the suspension, each with its notice
    assert next(s for kind, s in summaries if kind == "event").startswith("active -> overdue")
    assert [s.split(":")[0] for kind, s in summaries if kind == "event"][-1] == (
        "final-notice -> suspended"
    )
    notices = [s.split(" to ")[0] for kind, s in summaries if kind == "notice"]
    assert notices == ["reminder #1", "reminder #2", "reminder #3", "final", "suspension"]
    assert [entry.seq for entry in entries] == list(range(1, len(entries) + 1))
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
    with app.sessions() as session:
        assert verify_chain(session) == []


def test_every_session_factory_appends_however_many_came_before(app: App) -> None:
    # Each factory is dropped before the next is made, so a new one is often placed at
    # the address of the last: a listener keyed by address must not be taken as its own.
    before = len(_entries(app))
    for number in range(40):
        sessions = session_factory(app.engine)
        with sessions() as session, session.begin():
            session.add(DaemonFlag(name=f"probe-{number}", value={}, updated_at=START))
        del sessions
    added = _entries(app)[before:]
    assert [entry.summary for entry in added] == [f"probe-{n} set" for n in range(40)]
    with app.sessions() as session:
        assert verify_chain(session) == []


def _without_guard(app: App) -> None:
    """Remove the append-only triggers, as someone with database access could."""
    with app.engine.begin() as connection:
        if app.engine.dialect.name == "sqlite":
            connection.execute(text("DROP TRIGGER audit_append_only_update"))
            connection.execute(text("DROP TRIGGER audit_append_only_delete"))
        else:
            connection.execute(text("DROP TRIGGER audit_append_only ON audit_log"))


def test_the_database_refuses_edits(app: App) -> None:
    with pytest.raises(Exception, match="append-only"), app.engine.begin() as connection:
        connection.execute(text("UPDATE audit_log SET summary = 'x' WHERE seq = 1"))


def test_an_edited_row_is_named(app: App) -> None:
    target = _entries(app)[3]
    _without_guard(app)
    with app.engine.begin() as connection:
        connection.execute(
            text("UPDATE audit_log SET summary = 'nothing happened' WHERE id = :id"),
            {"id": target.id},
        )
    with app.sessions() as session:
        problems = verify_chain(session)
    assert problems == [
        f"audit row id {target.id} (seq {target.seq}): content was edited after it was written"
    ]


def test_removed_rows_are_found(app: App) -> None:
    entries = _entries(app)
    middle, last = entries[2], entries[-1]
    _without_guard(app)
    with app.engine.begin() as connection:
        connection.execute(
            text("DELETE FROM audit_log WHERE id IN (:a, :b)"), {"a": middle.id, "b": last.id}
        )
    with app.sessions() as session:
        problems = verify_chain(session)
    after = entries[3]
    gap = f"entries seq {middle.seq}..{middle.seq} were removed"
    assert f"audit row id {after.id} (seq {after.seq}): {gap}" in problems
    assert any(problem.startswith("the newest entries were removed") for problem in problems)
