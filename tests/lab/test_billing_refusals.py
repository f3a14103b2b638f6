"""A sync over hostile billing rows: each bad row is refused with its field and line, and
every other account reaches the state database (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from structlog.testing import capture_logs

from daemon.billing import fields
from daemon.billing.file import CELL_LIMIT
from daemon.config.load import validate_config
from daemon.runtime.app import build_app
from daemon.store.models import Account
from tests.unit.billing.helpers import flat_row, write_csv


def test_a_sync_refuses_bad_rows_and_keeps_the_rest(tmp_path: Path, state_url: str) -> None:
    rows = [
        flat_row("alpha"),
        flat_row("."),
        flat_row(".."),
        flat_row("a/b"),
        flat_row("a" * 65),
        flat_row("bravo", contact_name="n" * (fields.NAME_LIMIT + 1)),
        flat_row("charlie", item_description="x" * (CELL_LIMIT + 10)),
        flat_row("delta", plan="p" * (fields.PLAN_LIMIT + 1)),
        flat_row("omega"),
    ]
    write_csv(tmp_path / "billing.csv", rows)
    raw = {
        "state": {"url": state_url},
        "billing": {"type": "file", "path": "billing.csv"},
        "backup": {"store": {"type": "local", "path": "backups"}},
        "notices": {"notifier": {"type": "outbox", "path": "outbox"}},
    }
    app = build_app(validate_config(raw, "test", tmp_path))
    try:
        with capture_logs() as logs:
            report = app.lifecycle.sync()
        with app.sessions() as session:
            stored = sorted(session.scalars(select(Account.id)))
    finally:
        app.engine.dispose()

    assert stored == ["alpha", "omega"]
    assert [(error.row, error.field) for error in report.row_errors] == [
        ("line 3", "account_id"),
        ("line 4", "account_id"),
        ("line 5", "account_id"),
        ("line 6", "account_id"),
        ("line 7", "contact_name"),
        ("line 8", "item_description"),
        ("line 9", "plan"),
    ]
    skipped = [entry for entry in logs if entry["event"] == "billing row skipped"]
    assert [(entry["row"], entry["field"]) for entry in skipped] == [
        (error.row, error.field) for error in report.row_errors
    ]
    # An error quotes at most 60 characters of a value, never a whole runaway one.
    assert all(len(str(error)) < 300 for error in report.row_errors)
