"""Killing `lapse run` with SIGKILL and starting it again neither repeats nor skips a transition."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.e2e.daemon_process import start_daemon, stop_daemon, wait_for

ACCOUNTS = 1500


def _billing(path: Path, now: datetime) -> None:
    """Accounts overdue by 0 to 69 days (and some paid), deadlines hours away from `now`."""
    accounts = []
    for number in range(ACCOUNTS):
        age = number % 70
        due = now - timedelta(days=age, hours=2)
        paid = number % 10 == 0
        accounts.append(
            {
                "account_id": f"acct{number:05d}",
                "plan": "default",
                "contact": {
                    "name": f"Client {number}",
                    "email": f"c{number}@example.org",
                    "timezone": "UTC",
                },
                "currency": "USD",
                "invoices": []
                if paid
                else [
                    {
                        "id": f"INV{number}",
                        "due_at": due.isoformat(),
                        "total": "25.00",
                        "items": [{"description": "Hosting", "amount": "25.00"}],
                    }
                ],
                "services": [],
            }
        )
    path.write_text(json.dumps({"accounts": accounts}))


def _config(directory: Path, billing: Path) -> Path:
    config = directory / "lapse.toml"
    config.write_text(
        f"""
[daemon]
sync_interval = "1h"
log_format = "json"
[state]
url = "sqlite:///{directory / "state.db"}"
[billing]
type = "file"
path = "{billing}"
[backup.store]
type = "local"
path = "{directory / "backups"}"
[policy.default]
# The test runs on the real clock: contact hours would make its outcome depend on when.
quiet_hours = ""
contact_days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
[notices.notifier]
type = "outbox"
path = "{directory / "outbox"}"
"""
    )
    return config


def _settled(directory: Path) -> bool:
    database = directory / "state.db"
    if not database.exists():
        return False
    try:
        with sqlite3.connect(database, timeout=5) as connection:
            accounts = connection.execute("SELECT count(*) FROM accounts").fetchone()[0]
            pending = connection.execute(
                "SELECT count(*) FROM correspondence WHERE status = 'pending'"
            ).fetchone()[0]
    except sqlite3.OperationalError:
        return False  # tables not created yet
    return bool(accounts == ACCOUNTS and pending == 0)


def _outcome(
    directory: Path,
) -> tuple[Counter[tuple[str, str, str]], Counter[tuple[str, str, int]]]:
    with sqlite3.connect(directory / "state.db") as connection:
        events = Counter(connection.execute("SELECT account_id, from_state, to_state FROM events"))
        letters = Counter(
            connection.execute(
                "SELECT account_id, notice, number FROM correspondence WHERE status='sent'"
            )
        )
    return events, letters


def _run_to_completion(directory: Path, config: Path, kills: int) -> None:
    log = directory / "daemon.log"
    rng = random.Random(7)
    for _ in range(kills):
        process = start_daemon(config, log)
        time.sleep(rng.uniform(0.8, 3.0))
        assert stop_daemon(process, signal.SIGKILL) == -signal.SIGKILL
    process = start_daemon(config, log)
    try:
        wait_for(lambda: _settled(directory), 180, "the first sync to finish")
    finally:
        assert stop_daemon(process) == 0, log.read_text()[-2000:]


def test_sigkill_and_restart_neither_repeats_nor_skips(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    billing = tmp_path / "billing.json"
    _billing(billing, now)
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    for directory in (clean, killed):
        directory.mkdir()
    _run_to_completion(clean, _config(clean, billing), kills=0)
    _run_to_completion(killed, _config(killed, billing), kills=3)

    clean_events, clean_letters = _outcome(clean)
    killed_events, killed_letters = _outcome(killed)
    assert killed_events == clean_events
    assert killed_letters == clean_letters
    assert max(killed_events.values()) == 1  # no transition recorded twice
    assert max(killed_letters.values()) == 1  # no notice sent twice
    assert len(list((killed / "outbox").iterdir())) == sum(killed_letters.values())
    assert sum(clean_letters.values()) > ACCOUNTS // 2  # the run did real work
