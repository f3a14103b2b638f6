"""`lapse report` over a lifecycle driven through the real engine on a virtual clock.

The default policy sends reminders 3, 10 and 17 days after the due date, the
final notice on day 28, suspends on day 35, warns of removal on days 51 and 62
and deletes on day 65. Every account falls due at T0 (day 0) unless noted:

| account          | owes       | what happens                                          |
| ---------------- | ---------- | ----------------------------------------------------- |
| after-reminder   | 100.00 EUR | pays on day 5 (reminder 1 on day 3)                   |
| after-reminder-2 |  50.00 EUR | pays on day 14 (reminder 2 on day 10)                 |
| twice            | 120.00 EUR | pays on day 30 (final on 28); a new 60.00 invoice due |
|                  |            | on day 40 is reminded on day 43, paid on day 45       |
| after-suspension |  80.00 USD | pays on day 40 (suspended on 35)                      |
| after-warning    | 200.00 EUR | pays on day 55 (removal warning 1 on day 51)          |
| never-pays       | 150.00 EUR | deleted on day 65                                     |
| held             |  90.00 EUR | put on an ops hold on day 20, still held              |
| late-starter     |  70.00 EUR | falls due on day 60, reminded on days 63 and 70       |
| always-paid      |  nothing   | stays active                                          |
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select

from daemon.domain.clock import VirtualClock
from daemon.policy.commands import hold
from daemon.reports.figures import Report, build_report
from daemon.runtime.app import App
from daemon.store.models import ScheduledAction
from tests.lab.engine_helpers import account, make_app, run_days, write_billing

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)
END = 70
LAPSE = str(Path(sys.executable).parent / "lapse")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

ALL_STATES_EMPTY = {
    "active": 0,
    "overdue": 0,
    "reminded": 0,
    "final-notice": 0,
    "suspended": 0,
    "removal-warned": 0,
    "deleted": 0,
    "suspend-failed": 0,
    "delete-failed": 0,
    "on-hold": 0,
    "payment-plan": 0,
    "exempt": 0,
    "legal-hold": 0,
    "ops-suspended": 0,
}


class _Billing:
    """The billing file the app reads, edited between syncs as clients pay."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.accounts: dict[str, dict[str, Any]] = {}

    def owe(self, name: str, balance: str, due_day: int, currency: str = "EUR") -> None:
        """Give `name` one open invoice of `balance` due on `due_day`."""
        entry = account(name, T0 + due_day * DAY, balance)
        entry["currency"] = currency
        entry["invoices"][0]["id"] = f"INV-{name}-{due_day}"
        self.accounts[name] = entry
        write_billing(self.path, list(self.accounts.values()))

    def paid_up(self, name: str) -> None:
        """Add `name`, who owes nothing."""
        self.accounts[name] = account(name, None)
        write_billing(self.path, list(self.accounts.values()))

    def pay(self, name: str) -> None:
        """Settle everything `name` owes."""
        currency = self.accounts[name]["currency"]
        self.accounts[name] = account(name, None) | {"currency": currency}
        write_billing(self.path, list(self.accounts.values()))


def _advance_to(app: App, clock: VirtualClock, day: int) -> None:
    """Run the scheduler's wake-ups up to `day` after T0, a day at a time; each queued
    suspend phase succeeds at the end of its day (there are no hosts here), which sends
    the suspension notice as the runner does."""
    for _ in range(day - round((clock.now - T0) / DAY)):
        run_days(app, clock, 1)
        with app.sessions() as session:
            suspends = session.scalars(
                select(ScheduledAction.id).where(
                    ScheduledAction.name == "suspend", ScheduledAction.status == "pending"
                )
            ).all()
        for action_id in suspends:
            app.lifecycle.phase_done(action_id)


def _history(tmp_path: Path, state_url: str) -> VirtualClock:
    """Drive the accounts of the module docstring from T0 to day END; return the clock."""
    billing = _Billing(tmp_path / "billing.json")
    for name, balance in (
        ("after-reminder", "100.00"),
        ("after-reminder-2", "50.00"),
        ("twice", "120.00"),
        ("after-warning", "200.00"),
        ("never-pays", "150.00"),
        ("held", "90.00"),
    ):
        billing.owe(name, balance, 0)
    billing.owe("after-suspension", "80.00", 0, currency="USD")
    billing.owe("late-starter", "70.00", 60)
    billing.paid_up("always-paid")
    clock = VirtualClock(T0)
    app = make_app(tmp_path, state_url, clock, anytime=True)
    app.lifecycle.sync()
    steps: tuple[tuple[int, Callable[[], object]], ...] = (
        (5, lambda: billing.pay("after-reminder")),
        (14, lambda: billing.pay("after-reminder-2")),
        (20, lambda: app.lifecycle.apply_command("held", hold, "ops:test", reason="disputed")),
        (30, lambda: billing.pay("twice")),
        (40, lambda: billing.pay("after-suspension")),
        (40, lambda: billing.owe("twice", "60.00", 40)),
        (45, lambda: billing.pay("twice")),
        (55, lambda: billing.pay("after-warning")),
    )
    for day, change in steps:
        _advance_to(app, clock, day)
        change()
        app.lifecycle.sync()
    _advance_to(app, clock, END)
    return clock


def _report(tmp_path: Path, state_url: str, clock: VirtualClock, since_day: int) -> Report:
    """The report from `since_day` after T0 to the clock's now."""
    app = make_app(tmp_path, state_url, clock, anytime=True)
    with app.sessions() as session:
        return build_report(session, T0 + since_day * DAY, clock.now)


def test_report_over_the_whole_history(tmp_path: Path, state_url: str) -> None:
    """Every figure over a window holding the whole history, as worked out by hand."""
    clock = _history(tmp_path, state_url)
    report = _report(tmp_path, state_url, clock, -1)

    assert report.accounts_per_state == ALL_STATES_EMPTY | {
        "active": 6,
        "reminded": 1,
        "on-hold": 1,
        "deleted": 1,
    }
    # late-starter 70 and held 90; never-pays' 150 went with its deletion.
    assert report.overdue_now == {"EUR": Decimal("160.00")}
    # 100 + 50 + 120 + 60 + 200 EUR, and 80 USD.
    assert report.recovered == {"EUR": Decimal("530.00"), "USD": Decimal("80.00")}
    assert report.payments == 6
    # All but always-paid fell overdue; five of those eight paid.
    assert (report.became_overdue, report.paid_since, report.recovery_rate) == (8, 5, 0.625)
    # reminder: 2, 4, 13, 2 (twice's second episode), 23, 38 -> (4 + 13) / 2.
    # final: 2, 12, 27 (twice's final of day 28 ended with its first payment).
    # suspension: 5, 20. removal warning: 4.
    assert report.days_to_pay == {
        "reminder": 8.5,
        "final": 12.0,
        "suspension": 12.5,
        "removal-warning": 4.0,
    }
    assert report.payments_after == {
        "reminder": 6,
        "final": 3,
        "suspension": 2,
        "removal-warning": 1,
    }
    assert (report.suspensions, report.reactivations, report.deletions) == (3, 2, 1)


def test_report_counts_only_what_happened_in_the_window(tmp_path: Path, state_url: str) -> None:
    """From day 50: one payment (after the removal warning), one account fell overdue and
    has not paid, one deletion; accounts per stage and overdue amounts are as of now."""
    clock = _history(tmp_path, state_url)
    report = _report(tmp_path, state_url, clock, 50)

    assert report.accounts_per_state["active"] == 6
    assert report.overdue_now == {"EUR": Decimal("160.00")}
    assert report.recovered == {"EUR": Decimal("200.00")}
    assert report.payments == 1
    assert (report.became_overdue, report.paid_since, report.recovery_rate) == (1, 0, 0.0)
    assert report.days_to_pay == {
        "reminder": 38.0,
        "final": 27.0,
        "suspension": 20.0,
        "removal-warning": 4.0,
    }
    assert (report.suspensions, report.reactivations, report.deletions) == (0, 1, 1)


def test_report_on_an_empty_database(tmp_path: Path, state_url: str) -> None:
    """No accounts: zeros, no money, no rate, no medians."""
    clock = VirtualClock(T0)
    report = _report(tmp_path, state_url, clock, -30)

    assert report.accounts_per_state == ALL_STATES_EMPTY
    assert (report.overdue_now, report.recovered, report.recovery_rate) == ({}, {}, None)
    assert set(report.days_to_pay.values()) == {None}


def _lapse(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LAPSE, *arguments], capture_output=True, text=True, check=False)


def _config(tmp_path: Path) -> Path:
    """A config for the CLI on an SQLite state DB under tmp_path."""
    config = tmp_path / "lapse.toml"
    config.write_text(
        f'[state]\nurl = "sqlite:///{tmp_path / "state.db"}"\n'
        '[billing]\ntype = "file"\npath = "billing.json"\n'
        '[backup.store]\ntype = "local"\npath = "backups"\n'
        '[notices.notifier]\ntype = "outbox"\npath = "outbox"\n'
    )
    return config


def test_report_command_prints_json_and_draws_a_chart(tmp_path: Path) -> None:
    """`lapse report --json --chart` prints the figures as JSON (money as strings) and
    writes a PNG, saying where on stderr; without --json it prints the tables."""
    _history(tmp_path, f"sqlite:///{tmp_path / 'state.db'}")
    config = _config(tmp_path)
    chart = tmp_path / "report.png"

    result = _lapse(
        "report", "--since", "2026-01-01", "--json", "--chart", str(chart), "-c", str(config)
    )

    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures.pop("since") == "2026-01-01T00:00:00+00:00"
    assert datetime.fromisoformat(figures.pop("until")) > T0 + END * DAY
    assert figures == {
        "accounts_per_state": ALL_STATES_EMPTY
        | {"active": 6, "reminded": 1, "on-hold": 1, "deleted": 1},
        "overdue_now": {"EUR": "160.00"},
        "recovered": {"EUR": "530.00", "USD": "80.00"},
        "payments": 6,
        "became_overdue": 8,
        "paid_since": 5,
        "recovery_rate": 0.625,
        "median_days_to_pay_after": {
            "reminder": 8.5,
            "final": 12.0,
            "suspension": 12.5,
            "removal-warning": 4.0,
        },
        "payments_after": {"reminder": 6, "final": 3, "suspension": 2, "removal-warning": 1},
        "suspensions": 3,
        "reactivations": 2,
        "deletions": 1,
    }
    assert chart.read_bytes().startswith(PNG_SIGNATURE)
    assert chart.stat().st_size > 1024
    assert result.stderr.strip().endswith(f"chart written to {chart}")

    table = _lapse("report", "--since", "2026-01-01", "-c", str(config))
    assert table.returncode == 0, table.stderr
    assert "62.5%" in table.stdout and "530.00" in table.stdout and "on-hold" in table.stdout


def test_report_defaults_to_the_last_30_days(tmp_path: Path) -> None:
    """Without --since the window is the 30 days up to now; a chart of an empty
    database is still drawn, and said to be written on stdout."""
    chart = tmp_path / "empty.png"
    # Only run and migrate create a state database (docs/cli.md).
    assert _lapse("migrate", "-c", str(_config(tmp_path))).returncode == 0
    result = _lapse("report", "--json", "-c", str(_config(tmp_path)))
    drawn = _lapse("report", "--chart", str(chart), "-c", str(_config(tmp_path)))

    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    window = datetime.fromisoformat(figures["until"]) - datetime.fromisoformat(figures["since"])
    assert window == timedelta(days=30)
    assert figures["payments"] == 0 and figures["recovery_rate"] is None
    assert drawn.returncode == 0, drawn.stderr
    assert f"chart written to {chart}" in drawn.stdout
    assert chart.read_bytes().startswith(PNG_SIGNATURE)


def test_report_refuses_a_bad_since(tmp_path: Path) -> None:
    """A --since that is no date, or lies ahead, is a usage error (exit 2) naming it."""
    config = str(_config(tmp_path))
    garbled = _lapse("report", "--since", "last tuesday", "-c", config)
    ahead = _lapse("report", "--since", "2999-01-01", "-c", config)

    assert garbled.returncode == 2
    assert (
        "Invalid value for '--since': expected a date like 2026-12-31 or 2026-12-31T18:00,"
        " got 'last tuesday'" in garbled.stderr
    )
    assert ahead.returncode == 2
    assert "Invalid value for '--since': '2999-01-01' is not in the past" in ahead.stderr
