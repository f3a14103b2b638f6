"""A sync refuses accounts whose docroots on one host coincide or nest, naming both, and
syncs the rest (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from daemon.domain.clock import VirtualClock
from daemon.store.models import Account
from tests.lab.engine_helpers import account, make_app, write_billing

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def _hosted(account_id: str, docroot: str, owing: bool = True) -> dict[str, Any]:
    row = account(account_id, T0 - timedelta(days=12) if owing else None)
    row["services"] = [{"host": "web1", "system_user": account_id, "docroot": docroot}]
    return row


def test_overlapping_docroots_are_refused_and_the_rest_synced(
    tmp_path: Path, state_url: str
) -> None:
    billing = tmp_path / "billing.json"
    write_billing(
        billing,
        [
            _hosted("alice", "/home/alice/public_html"),
            _hosted("bob", "/home/bob/public_html"),
            _hosted("carol", "/srv/www/carol"),
        ],
    )
    app = make_app(tmp_path, state_url, VirtualClock(T0))
    assert app.lifecycle.sync().row_errors == ()

    # mallory's billing row now claims alice's docroot; dave's sits inside carol's.
    write_billing(
        billing,
        [
            _hosted("alice", "/home/alice/public_html", owing=False),
            _hosted("bob", "/home/bob/public_html", owing=False),
            _hosted("carol", "/srv/www/carol", owing=False),
            _hosted("mallory", "/home/alice/public_html"),
            _hosted("dave", "/srv/www/carol/shop"),
        ],
    )
    report = app.lifecycle.sync()

    refused = {error.row: (error.field, error.message) for error in report.row_errors}
    assert sorted(refused) == ["alice", "carol", "dave", "mallory"]
    assert refused["alice"] == (
        "services.docroot",
        "refused, as are the accounts it overlaps (one tree per account): "
        "/home/alice/public_html on web1 is also the docroot of account 'mallory'",
    )
    assert (
        "/srv/www/carol/shop on web1 lies inside /srv/www/carol of account 'carol'"
        in (refused["dave"][1])
    )
    assert report.seen == 1 and "4 rows skipped" in report.summary()
    with app.sessions() as session:
        states = {row.id: row.state for row in session.query(Account).all()}
    # bob paid and is active again; the refused accounts keep what they had: nothing
    # about them changes, and the two new rows are not taken in.
    assert states == {"alice": "reminded", "bob": "active", "carol": "reminded"}
