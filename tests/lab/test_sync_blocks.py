"""A sync passes over the blocks of billing rows it remembers unchanged, and misses no
change for it: every account whose raw data changed, or whose deadline came, is
evaluated in the same sync; the trees, the row errors and the counts of the blocks
passed over are those a full listing gives; a sync that rolls back leaves the blocks
remembered as the state database holds its accounts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from daemon.billing import flat_blocks
from daemon.billing.flat_blocks import FlatBlock
from daemon.billing.listing import Listed, Refused
from daemon.domain.clock import VirtualClock
from daemon.domain.snapshot import AccountSnapshot
from daemon.runtime.app import App
from daemon.store.models import Account, BillingBlock
from daemon.store.records import stored_snapshot
from tests.lab.test_sync_stream import NOW, billing, owing, sql_app, states
from tests.unit.billing.helpers import paid_row

# Blocks end after these accounts (and at the end of the rows).
BOUNDARIES = {"a03", "a07", "a11"}


@pytest.fixture(autouse=True)
def boundaries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cut the rows after the accounts BOUNDARIES: blocks a00-a03, a04-a07, a08-a11."""
    monkeypatch.setattr(flat_blocks, "ends_block", lambda account_id: account_id in BOUNDARIES)


@pytest.fixture
def listed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The keys of the blocks a sync listed account by account, in order."""
    keys: list[str] = []
    listings = FlatBlock.listings

    def counted(self: FlatBlock) -> Iterator[Listed | Refused]:
        keys.append(self.key)
        return listings(self)

    monkeypatch.setattr(FlatBlock, "listings", counted)
    return keys


def customers(count: int = 12) -> list[dict[str, str]]:
    """Rows of accounts a00...: each third one owes (two rows), the others paid up."""
    rows: list[dict[str, str]] = []
    for number in range(count):
        account_id = f"a{number:02d}"
        rows.extend(owing(account_id) if number % 3 == 0 else [paid_row(account_id)])
    return rows


def fetched(app: App) -> dict[str, AccountSnapshot]:
    """Every account billing lists, read afresh without blocks."""
    return {snapshot.account_id: snapshot for snapshot in app.billing.fetch_all().snapshots}


def assert_in_step(app: App) -> None:
    """The state database holds every billing account, with the snapshot billing gives
    (an account gone from billing stays as it was)."""
    with app.sessions() as session:
        stored = {row.id: stored_snapshot(row) for row in session.scalars(select(Account))}
    billed = fetched(app)
    assert {key: stored.get(key) for key in billed} == billed


def remembered(app: App) -> list[str]:
    with app.sessions() as session:
        return sorted(session.scalars(select(BillingBlock.key)))


def test_an_idle_sync_lists_no_block(tmp_path: Path, state_url: str, listed: list[str]) -> None:
    billing(tmp_path, customers())
    app = sql_app(tmp_path, state_url, VirtualClock(NOW))
    first = app.lifecycle.sync()
    assert listed == ["a03", "a07", "a11"] and first.seen == 12
    assert remembered(app) == ["a03", "a07", "a11"]
    listed.clear()

    idle = app.lifecycle.sync()

    assert listed == [] and idle.seen == 12 and not idle.transitions and not idle.row_errors
    assert_in_step(app)


def _paid(rows: list[dict[str, str]], account_id: str) -> list[dict[str, str]]:
    """`rows` with the account's two owing rows replaced by its one paid row, in place."""
    at = next(i for i, row in enumerate(rows) if row["account_id"] == account_id)
    return [*rows[:at], paid_row(account_id), *rows[at + 2 :]]


def _moved(rows: list[dict[str, str]], account_id: str, after: str) -> list[dict[str, str]]:
    """`rows` with the account's rows put after those of `after`."""
    mine = [row for row in rows if row["account_id"] == account_id]
    rest = [row for row in rows if row["account_id"] != account_id]
    at = max(i for i, row in enumerate(rest) if row["account_id"] == after) + 1
    return [*rest[:at], *mine, *rest[at:]]


def _renamed(rows: list[dict[str, str]], account_id: str) -> list[dict[str, str]]:
    """`rows` with the account's contact name capitalised: not a byte more or less."""
    name = {"contact_name": f"Client {account_id.upper()}"}
    return [row | name if row["account_id"] == account_id else row for row in rows]


def _inserted(rows: list[dict[str, str]], account_id: str, after: str) -> list[dict[str, str]]:
    """`rows` with a new owing account put after the rows of `after`."""
    return _moved([*rows, *owing(account_id)], account_id, after)


Rows = list[dict[str, str]]
CHANGES: dict[str, Callable[[Rows], Rows]] = {
    "same size, inside a block": lambda rows: _renamed(rows, "a05"),
    "same size, first of a block": lambda rows: _renamed(rows, "a04"),
    "same size, last of a block": lambda rows: _renamed(rows, "a07"),
    "last of a block pays": lambda rows: _paid(rows, "a03"),
    "swapped within a block": lambda rows: _moved(rows, "a05", after="a06"),
    "moved across a boundary": lambda rows: _moved(rows, "a05", after="a09"),
    "moved and paid": lambda rows: _moved(_paid(rows, "a06"), "a06", after="a10"),
    "inserted after a boundary": lambda rows: _inserted(rows, "n01", after="a07"),
    "inserted before a boundary": lambda rows: _inserted(rows, "n02", after="a06"),
    "inserted, ending a block": lambda rows: _inserted(rows, "n03", after="a01"),
    "boundary removed": lambda rows: [row for row in rows if row["account_id"] != "a07"],
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_any_change_to_billing_is_evaluated_the_same_sync(
    tmp_path: Path, state_url: str, change: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ends = BOUNDARIES | {"n03"}  # a new account that ends a block
    monkeypatch.setattr(flat_blocks, "ends_block", lambda account_id: account_id in ends)
    clock = VirtualClock(NOW)
    rows = customers()
    billing(tmp_path, rows)
    app = sql_app(tmp_path, state_url, clock)
    app.lifecycle.sync()
    assert_in_step(app)

    billing(tmp_path, CHANGES[change](rows))
    app.lifecycle.sync()

    assert_in_step(app)


def test_an_account_whose_deadline_came_is_evaluated_in_its_unchanged_block(
    tmp_path: Path, state_url: str, listed: list[str]
) -> None:
    rows = [row for n in range(12) for row in (owing if n == 5 else _one_paid)(f"a{n:02d}")]
    billing(tmp_path, rows)
    clock = VirtualClock(NOW)
    app = sql_app(tmp_path, state_url, clock)
    app.lifecycle.sync()
    with app.sessions() as session:
        wake_at = session.scalar(select(Account.next_wake_at).where(Account.id == "a05"))
    assert wake_at is not None
    listed.clear()

    clock.set(wake_at)
    report = app.lifecycle.sync()

    assert listed == ["a07"] and report.seen == 12
    assert report.transitions["reminded"] == 1


def _one_paid(account_id: str) -> list[dict[str, str]]:
    return [paid_row(account_id)]


def test_a_new_account_overlapping_one_in_an_unchanged_block_is_refused_with_it(
    tmp_path: Path, state_url: str
) -> None:
    rows = [paid_row(f"a{n:02d}") for n in range(12)]
    billing(tmp_path, rows)
    app = sql_app(tmp_path, state_url, VirtualClock(NOW))
    app.lifecycle.sync()
    before = states(app)
    shop = paid_row("n01") | {"docroot": "/srv/www/a05/shop"}

    billing(tmp_path, [*rows, shop])
    first = app.lifecycle.sync()
    billing(tmp_path, [*rows, shop])
    again = app.lifecycle.sync()

    for report in (first, again):
        refused = {error.row: error.message for error in report.row_errors}
        assert sorted(refused) == ["a05", "n01"] and "'n01'" in refused["a05"]
        assert "'a05'" in refused["n01"] and report.seen == 11
    assert states(app) == before  # n01 never entered

    billing(tmp_path, [*rows, paid_row("n01")])
    cleared = app.lifecycle.sync()
    assert not cleared.row_errors and cleared.seen == 13 and "n01" in states(app)
    assert_in_step(app)


def test_row_errors_of_an_unchanged_block_are_reported_at_every_sync(
    tmp_path: Path, state_url: str, listed: list[str]
) -> None:
    rows = [paid_row(f"a{n:02d}") for n in range(12)]
    rows[5] = rows[5] | {"currency": "euro"}  # a05 cannot be read
    rows[9] = rows[9] | {"account_id": ""}  # a row of no account
    billing(tmp_path, rows)
    app = sql_app(tmp_path, state_url, VirtualClock(NOW))

    def expected() -> list[str]:
        return sorted(map(str, app.billing.fetch_all().errors))

    first = app.lifecycle.sync()
    listed.clear()
    idle = app.lifecycle.sync()
    # Two accounts more in the first block: the rows of the others move down by two.
    billing(tmp_path, [*owing("a00x"), *rows])
    listed.clear()
    shifted = app.lifecycle.sync()

    assert sorted(map(str, first.row_errors)) == sorted(map(str, idle.row_errors))
    assert len(idle.row_errors) == 2 and idle.seen == 10
    assert sorted(map(str, shifted.row_errors)) == expected()
    assert "row 8" in " ".join(map(str, shifted.row_errors))  # a05's row, two down
    assert listed == ["a03"] and shifted.seen == 11


def test_accounts_the_brake_held_back_are_evaluated_once_it_is_released(
    tmp_path: Path, state_url: str
) -> None:
    paid = [paid_row(f"a{n:02d}") for n in range(20)]
    billing(tmp_path, paid)
    app = sql_app(tmp_path, state_url, VirtualClock(NOW))
    app.lifecycle.sync()

    # Half the customer base suddenly owes: more than the brake lets through.
    lapsed = [row for n in range(10) for row in owing(f"a{n:02d}")]
    billing(tmp_path, [*lapsed, *paid[10:]])
    braked = app.lifecycle.sync()
    assert braked.braked and set(states(app).values()) == {"active"}
    app.lifecycle.brake.release("ops")

    released = app.lifecycle.sync()

    assert not released.braked and released.transitions["overdue"] == 10
    assert_in_step(app)


def test_a_sync_that_fails_leaves_the_blocks_as_the_accounts_are(
    tmp_path: Path, state_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from daemon.lifecycle import sync_pass

    monkeypatch.setattr(sync_pass, "BATCH", 3)  # blocks are remembered before the end
    rows = customers()
    billing(tmp_path, rows)
    app = sql_app(tmp_path, state_url, VirtualClock(NOW))
    app.lifecycle.sync()
    blocks_before = _blocks(app)
    evaluate = app.lifecycle.evaluate_batch

    def failing(session: object, due: list[sync_pass.Due], *args: object) -> None:
        if any(entry.snapshot.account_id == "a09" for entry in due):
            raise RuntimeError("the state database went away")
        evaluate(session, due, *args)  # type: ignore[arg-type]

    billing(tmp_path, _paid(_paid(rows, "a00"), "a09"))
    monkeypatch.setattr(app.lifecycle, "evaluate_batch", failing)
    with pytest.raises(RuntimeError):
        app.lifecycle.sync()
    assert _blocks(app) == blocks_before
    monkeypatch.undo()

    app.lifecycle.sync()

    assert_in_step(app)


def _blocks(app: App) -> dict[str, str]:
    with app.sessions() as session:
        return dict(session.execute(select(BillingBlock.key, BillingBlock.digest)).all())


def test_a_snapshot_a_wake_up_stored_is_read_again_from_unchanged_rows(
    tmp_path: Path, state_url: str
) -> None:
    rows = customers()
    billing(tmp_path, rows)
    clock = VirtualClock(NOW)
    app = sql_app(tmp_path, state_url, clock)
    app.lifecycle.sync()

    # a05 owes for a moment: a wake-up reads it so; then billing is as it was.
    billing(tmp_path, [row for n in range(12) for row in _variant(rows, n)])
    app.lifecycle.wake("a05")
    assert states(app)["a05"] != "active"
    billing(tmp_path, rows)
    clock.advance(timedelta(minutes=1))

    app.lifecycle.sync()

    assert states(app)["a05"] == "active"
    assert_in_step(app)


def _variant(rows: list[dict[str, str]], number: int) -> list[dict[str, str]]:
    """The rows of account `number`, owing when it is a05."""
    account_id = f"a{number:02d}"
    if account_id == "a05":
        return owing(account_id)
    return [row for row in rows if row["account_id"] == account_id]


def test_the_blocks_of_rows_gone_are_forgotten(tmp_path: Path, state_url: str) -> None:
    """The blocks remembered are those of the last sync: none is left of rows gone."""
    rows = customers()
    billing(tmp_path, rows)
    app = sql_app(tmp_path, state_url, VirtualClock(NOW))
    app.lifecycle.sync()
    billing(tmp_path, rows[:8])  # a00 to a05
    app.lifecycle.sync()
    with app.sessions() as session:
        assert session.scalar(select(func.count()).select_from(BillingBlock)) == 2
    assert remembered(app) == ["a03", "a05"]


def test_a_new_account_refused_for_a_clash_enters_once_the_other_account_moves(
    tmp_path: Path, state_url: str
) -> None:
    rows = [paid_row(f"a{n:02d}") for n in range(12)]
    shop = paid_row("n01") | {"docroot": "/srv/www/a05/shop"}
    billing(tmp_path, [*rows, shop])
    app = sql_app(tmp_path, state_url, VirtualClock(NOW))
    app.lifecycle.sync()
    app.lifecycle.sync()  # the clash stands: both held, n01 waits
    assert "n01" not in states(app)

    # a05 moves its docroot away; n01's rows stay as they were.
    rows[5] = rows[5] | {"docroot": "/srv/www/a05-new"}
    billing(tmp_path, [*rows, shop])
    report = app.lifecycle.sync()

    assert not report.row_errors and report.seen == 13 and "n01" in states(app)
    assert_in_step(app)
