"""The embedded defaults' demo: a site suspended (backup, maintenance page) in a minute."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from daemon.backup.errors import BackupError
from daemon.backup.restore import RestoreRequest, restore_backup
from daemon.config import load_embedded_config
from daemon.domain.clock import VirtualClock
from daemon.runtime.app import build_app, prepare_embedded_data
from daemon.store.models import Account

START = datetime(2026, 11, 23, 10, 0, 5, tzinfo=UTC)


def test_the_demo_suspends_a_site_within_a_minute_and_restore_brings_it_back(
    tmp_path: Path,
) -> None:
    config = load_embedded_config(tmp_path / "data")
    clock = VirtualClock(START)
    prepare_embedded_data(config.billing, clock())
    app = build_app(config, clock)
    site = tmp_path / "data" / "sites" / "india"
    original = (site / "index.html").read_text()

    app.lifecycle.sync()  # the first sync: india gets its final notice
    clock.advance(timedelta(seconds=60))
    app.lifecycle.wake("india")
    app.runner.run_pending()

    with app.sessions() as session:
        account = session.get(Account, "india")
        assert account is not None and account.state == "suspended"
        assert account.suspended_at is not None
        assert account.suspended_at - START <= timedelta(seconds=60)
    page = (site / "index.html").read_text()
    assert "lapse-maintenance-page" in page and "india.example.test" in page
    backup = app.backups.latest_verified("india")
    assert backup is not None
    assert backup.location.startswith(str(tmp_path / "data" / "backups"))

    # The maintenance page is the live site of a suspended account: replacing it takes force.
    with pytest.raises(BackupError, match=r"india is suspended: .* pass --force"):
        restore_backup(app.backups, RestoreRequest(backup.id))
    assert "lapse-maintenance-page" in (site / "index.html").read_text()
    restore_backup(app.backups, RestoreRequest(backup.id, force=True))
    assert (site / "index.html").read_text() == original
