"""Backup retention: old backups expire, protected ones never do."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import update

from daemon.backup.retention import expire_backups
from daemon.domain.clock import VirtualClock
from daemon.policy.commands import hold
from daemon.store.models import Account, Event
from tests.lab.backup_helpers import backup_app, local_host, site_account
from tests.lab.backup_scene import NOW


def test_retention_spares_pending_deletions_and_legal_holds(
    tmp_path: Path, sqlite_url: str
) -> None:
    www = tmp_path / "www"
    for name in ("paid", "suspended", "held", "reactivated"):
        (www / name).mkdir(parents=True)
        (www / name / "index.html").write_text(name)
    clock = VirtualClock(NOW)
    app = backup_app(
        tmp_path,
        sqlite_url,
        clock,
        hosts={"web1": local_host([www])},
        store={"type": "local", "path": str(tmp_path / "backups")},
        accounts=[
            site_account(name, "web1", www / name, [])
            for name in ("paid", "suspended", "held", "reactivated")
        ],
        retention="30d",
    )
    made = {
        name: app.backups.create(name).id for name in ("paid", "suspended", "held", "reactivated")
    }
    app.lifecycle.apply_command("held", hold, "ops:legal", reason="court order", legal=True)
    with app.sessions() as session:
        # A suspended account waits for deletion: its backup is what deletion relies on.
        session.execute(update(Account).where(Account.id == "suspended").values(state="suspended"))
        # Reactivated 20 days in: retention counts from then.
        session.add(
            Event(
                account_id="reactivated",
                at=NOW + timedelta(days=20),
                from_state="suspended",
                to_state="active",
                reason="paid in full",
                actor="sync",
                details={},
            )
        )
        session.commit()

    assert expire_backups(app.backups, NOW + timedelta(days=29)) == []
    assert expire_backups(app.backups, NOW + timedelta(days=31)) == [made["paid"]]
    assert expire_backups(app.backups, NOW + timedelta(days=51)) == [made["reactivated"]]
    assert expire_backups(app.backups, NOW + timedelta(days=400)) == []

    statuses = {name: app.backups.get(backup_id).status for name, backup_id in made.items()}
    assert statuses == {
        "paid": "expired",
        "reactivated": "expired",
        "suspended": "verified",
        "held": "verified",
    }
    remaining = {path.parent.parent.name for path in (tmp_path / "backups").rglob("manifest.json")}
    assert remaining == {"suspended", "held"}
