"""A sync streams billing a batch at a time: unchanged accounts are not read, and what
is known only at the end (the brake, shared trees, scattered rows) starts it over
without leaving anything of the first pass behind."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, func, select, text, update
from sqlalchemy.orm.exc import StaleDataError

from daemon.billing.flat_stream import FlatListed
from daemon.config.load import validate_config
from daemon.domain.clock import VirtualClock
from daemon.lifecycle import sync_pass
from daemon.policy import LifecycleRecord
from daemon.runtime.app import App, build_app
from daemon.store.models import Account, Event
from daemon.store.records import record_from_row, stored_snapshot
from daemon.store.versioned_writes import write_changed
from tests.unit.billing.helpers import account_rows, fill_billing_table, paid_row

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def sql_app(tmp_path: Path, state_url: str, clock: VirtualClock) -> App:
    """A real app reading billing from the table billing_lines of an SQLite file."""
    raw = {
        "state": {"url": state_url},
        "billing": {
            "type": "sql",
            "url": f"sqlite:///{tmp_path / 'billing.db'}",
            "query": "SELECT * FROM billing_lines",
        },
        "backup": {"store": {"type": "local", "path": str(tmp_path / "backups")}},
        "notices": {"notifier": {"type": "outbox", "path": str(tmp_path / "outbox")}},
        "policy": {
            "default": {
                "quiet_hours": "",
                "contact_days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
            }
        },
    }
    return build_app(validate_config(raw, source="test", base_dir=tmp_path), clock)


def billing(tmp_path: Path, rows: list[dict[str, str]]) -> None:
    """Replace the billing table's rows with `rows`, in this order."""
    url = f"sqlite:///{tmp_path / 'billing.db'}"
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS billing_lines"))
    engine.dispose()
    fill_billing_table(url, rows)


def owing(
    account_id: str, due: datetime = NOW - timedelta(days=3), **cells: str
) -> list[dict[str, str]]:
    return account_rows(account_id, invoice_due_at=due.isoformat(), **cells)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of the accounts the sync read from their rows, in order."""
    seen: list[str] = []
    read = FlatListed.read

    def counted(self: FlatListed) -> object:
        seen.append(self.account_id)
        return read(self)

    monkeypatch.setattr(FlatListed, "read", counted)
    return seen


@pytest.fixture
def passes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per pass a sync made over billing."""
    made: list[int] = []
    run = sync_pass.run_pass

    def counted(*args: object, **kwargs: object) -> sync_pass.Outcome:
        made.append(1)
        return run(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("daemon.lifecycle.engine.run_pass", counted)
    return made


def states(app: App) -> dict[str, str]:
    with app.sessions() as session:
        return dict(session.execute(select(Account.id, Account.state)).all())


def test_an_unchanged_account_is_not_read_again(
    tmp_path: Path, state_url: str, reads: list[str]
) -> None:
    billing(tmp_path, [paid_row("zen"), *owing("acme"), paid_row("bolt")])
    app = sql_app(tmp_path, state_url, VirtualClock(NOW))

    first = app.lifecycle.sync()
    assert reads == ["zen", "acme", "bolt"] and first.seen == 3
    with app.sessions() as session:
        zen = session.get(Account, "zen")
        assert zen is not None and zen.billing_digest and zen.version == 1
        assert record_from_row(zen) == LifecycleRecord(account_id="zen")
        snapshot = stored_snapshot(zen)
        assert snapshot is not None and snapshot.account_id == "zen"

    reads.clear()
    idle = app.lifecycle.sync()
    assert reads == [] and idle.seen == 3 and not idle.transitions

    billing(tmp_path, [paid_row("zen"), paid_row("acme"), paid_row("bolt")])
    paid = app.lifecycle.sync()
    assert reads == ["acme"]
    assert paid.transitions["active"] == 1 and states(app)["acme"] == "active"

    # Cells that read the same snapshot: read once, then the new raw digest is kept.
    spaced = paid_row("zen") | {"contact_name": "  Client zen  "}
    billing(tmp_path, [spaced, paid_row("acme"), paid_row("bolt")])
    reads.clear()
    app.lifecycle.sync()
    app.lifecycle.sync()
    assert reads == ["zen"]
    with app.sessions() as session:
        zen = session.get(Account, "zen")
        assert zen is not None and zen.version == 1  # the snapshot and record never moved


def test_an_account_whose_deadline_came_is_read_though_unchanged(
    tmp_path: Path, state_url: str, reads: list[str]
) -> None:
    clock = VirtualClock(NOW)
    billing(tmp_path, [paid_row("zen"), *owing("acme")])
    app = sql_app(tmp_path, state_url, clock)
    app.lifecycle.sync()
    with app.sessions() as session:
        wake_at = session.scalar(select(Account.next_wake_at).where(Account.id == "acme"))
    assert wake_at is not None

    reads.clear()
    clock.set(wake_at)
    report = app.lifecycle.sync()

    assert reads == ["acme"] and report.transitions


def test_an_evaluated_account_found_sharing_a_tree_later_starts_the_sync_over(
    tmp_path: Path, state_url: str, passes: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sync_pass, "BATCH", 2)  # acme is written before shop is listed
    rows = [*owing("acme"), paid_row("zen"), paid_row("bolt")]
    shop = paid_row("shop") | {"docroot": "/srv/www/acme/shop"}
    billing(tmp_path, [*rows, shop])
    app = sql_app(tmp_path, state_url, VirtualClock(NOW))

    report = app.lifecycle.sync()

    assert len(passes) == 2
    assert sorted(error.row for error in report.row_errors) == ["acme", "shop"]
    assert report.seen == 2 and set(states(app)) == {"zen", "bolt"}
    with app.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == 0


def test_a_tree_clash_left_standing_does_not_start_every_sync_over(
    tmp_path: Path, state_url: str, passes: list[int]
) -> None:
    billing(tmp_path, [paid_row("zen"), *owing("acme")])
    app = sql_app(tmp_path, state_url, VirtualClock(NOW))
    app.lifecycle.sync()
    clash = [
        paid_row("zen") | {"docroot": "/srv/www/acme"},
        *owing("acme", invoice_total="30.00", invoice_amount_due="30.00"),
    ]
    billing(tmp_path, clash)
    app.lifecycle.sync()  # both changed and were evaluated: the sync started over
    passes.clear()

    report = app.lifecycle.sync()

    assert sorted(error.row for error in report.row_errors) == ["acme", "zen"]
    assert report.seen == 0 and len(passes) == 1
    with app.sessions() as session:
        acme = session.get(Account, "acme")
        assert acme is not None and acme.balance == 24  # not the refused 30.00

    # Once the clash is gone, the held accounts are evaluated in the same pass.
    billing(
        tmp_path,
        [paid_row("zen"), *owing("acme", invoice_total="30.00", invoice_amount_due="30.00")],
    )
    passes.clear()
    report = app.lifecycle.sync()
    assert not report.row_errors and report.seen == 2 and len(passes) == 1
    with app.sessions() as session:
        acme = session.get(Account, "acme")
        assert acme is not None and acme.balance == 30


def test_the_brake_tripping_late_in_the_stream_undoes_the_batches_written(
    tmp_path: Path, state_url: str, passes: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sync_pass, "BATCH", 3)
    paid = [paid_row(f"paid{i:02d}") for i in range(20)]
    billing(tmp_path, [*owing("late"), *paid])
    app = sql_app(tmp_path, state_url, VirtualClock(NOW))
    app.lifecycle.sync()
    before = states(app)
    passes.clear()

    # late pays; then half the customer base suddenly owes (the brake's limit is 25%).
    lapsed = [row for i in range(10) for row in owing(f"paid{i:02d}")]
    billing(tmp_path, [paid_row("late"), *paid[10:], *lapsed])
    report = app.lifecycle.sync()

    assert report.braked and len(passes) == 2
    engaged = app.lifecycle.brake.status()
    assert engaged is not None and "10 of 21 accounts" in engaged["reason"]
    assert states(app) == before | {"late": "active"}  # the payment still counts


def test_rows_found_scattered_start_over_once_then_are_read_apart(
    tmp_path: Path, state_url: str, passes: list[int]
) -> None:
    hosting, domain = owing("acme")
    billing(tmp_path, [hosting, paid_row("zen"), domain])
    app = sql_app(tmp_path, state_url, VirtualClock(NOW))

    # Scattered from the start: found before the first listing, which reads acme apart.
    first = app.lifecycle.sync()
    assert len(passes) == 1 and first.seen == 2
    with app.sessions() as session:
        acme = session.get(Account, "acme")
        assert acme is not None and acme.balance == 24

    # Scattered since: the listing meets it, starts over once, then reads it apart.
    bolt_hosting, bolt_domain = owing("bolt")
    billing(tmp_path, [bolt_hosting, hosting, paid_row("zen"), domain, bolt_domain])
    passes.clear()
    second = app.lifecycle.sync()
    assert len(passes) == 2 and second.seen == 3
    with app.sessions() as session:
        bolt = session.get(Account, "bolt")
        assert bolt is not None and bolt.balance == 24

    passes.clear()
    app.lifecycle.sync()
    assert len(passes) == 1


def _account_updates(app: App) -> list[bool]:
    """Start recording the UPDATE statements of the accounts table `app` runs: whether
    each was an executemany."""
    seen: list[bool] = []

    def note(*args: Any) -> None:
        if args[2].lstrip().upper().startswith("UPDATE ACCOUNTS"):
            seen.append(args[5])

    event.listen(app.engine, "before_cursor_execute", note)
    return seen


def test_a_batchs_changed_accounts_are_written_a_statement_per_shape(
    tmp_path: Path, state_url: str
) -> None:
    ids = [f"a{number:02d}" for number in range(30)]
    billing(tmp_path, [row for account_id in ids for row in owing(account_id)])
    app = sql_app(tmp_path, state_url, VirtualClock(NOW))
    app.lifecycle.sync()
    with app.sessions() as session:
        before = dict(session.execute(select(Account.id, Account.version)).all())
    assert set(states(app).values()) == {"reminded"}

    billing(tmp_path, [paid_row(account_id) for account_id in ids])
    updates = _account_updates(app)
    report = app.lifecycle.sync()
    assert report.transitions["active"] == 30
    # On PostgreSQL one executemany for the thirty; on SQLite the ORM's flush, a
    # statement each (see daemon.store.versioned_writes).
    assert updates == ([True] if app.engine.dialect.name == "postgresql" else [False] * 30)
    with app.sessions() as session:
        after = dict(session.execute(select(Account.id, Account.version)).all())
    assert set(states(app).values()) == {"active"}
    assert after == {account_id: version + 1 for account_id, version in before.items()}


def test_an_account_changed_by_another_writer_mid_batch_fails_the_batch_whole(
    tmp_path: Path, postgres: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PostgreSQL only: SQLite lets no second writer in while the sync's transaction writes.
    state_url = postgres.create_database(f"lapse_{uuid.uuid4().hex[:12]}")
    ids = [f"a{number:02d}" for number in range(30)]
    billing(tmp_path, [row for account_id in ids for row in owing(account_id)])
    app = sql_app(tmp_path, state_url, VirtualClock(NOW))
    app.lifecycle.sync()
    with app.sessions() as session:
        events = session.scalar(select(func.count()).select_from(Event))
        before = dict(session.execute(select(Account.id, Account.version)).all())
    billing(tmp_path, [paid_row(account_id) for account_id in ids])

    def after_another_writer(session: Any, objects: Any) -> int:
        with app.engine.begin() as other:  # a phase, say, writing the account meanwhile
            other.execute(
                update(Account)
                .where(Account.id == "a17")
                .values(updated_at=NOW, version=Account.version + 1)
            )
        return write_changed(session, objects)

    monkeypatch.setattr("daemon.lifecycle.engine.write_changed", after_another_writer)
    with pytest.raises(StaleDataError, match="matched 29"):
        app.lifecycle.sync()
    assert set(states(app).values()) == {"reminded"}  # nothing of the batch stands
    with app.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == events

    monkeypatch.undo()
    assert app.lifecycle.sync().transitions["active"] == 30
    assert set(states(app).values()) == {"active"}
    with app.sessions() as session:
        after = dict(session.execute(select(Account.id, Account.version)).all())
    # The other writer's change stood, and the sync's retry wrote over it, read afresh.
    assert after == {key: version + 1 + (key == "a17") for key, version in before.items()}
