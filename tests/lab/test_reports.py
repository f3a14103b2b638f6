"""`lapse report` over a lifecycle driven through the real engine on a virtual clock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from daemon.clock import VirtualClock
from daemon.reports.figures import build_report
from tests.lab.engine_helpers import account, make_app, run_days, write_billing

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)
LAPSE = str(Path(sys.executable).parent / "lapse")


def _history(tmp_path: Path, state_url: str) -> VirtualClock:
    """Five accounts fall due at T0 (and one later); three pay at different stages."""
    billing = tmp_path / "billing.json"
    owing = {
        name: account(name, T0)
        for name in ("after-reminder", "after-final", "after-suspension", "never-pays")
    }
    owing["late-starter"] = account("late-starter", T0 + 60 * DAY)
    paid = account("always-paid", None)
    write_billing(billing, [*owing.values(), paid])
    clock = VirtualClock(T0)
    app = make_app(tmp_path, state_url, clock, anytime=True)
    app.lifecycle.sync()
    # Reminders go out on days 3, 10 and 17, the final notice on day 28, the
    # suspension on day 35, deletion on day 65. Each client pays two or five days
    # after the notice named.
    for day, payer in ((5, "after-reminder"), (30, "after-final"), (40, "after-suspension")):
        run_days(app, clock, day - round((clock.now - T0) / DAY))
        owing[payer] = account(payer, None)
        write_billing(billing, [*owing.values(), paid])
        app.lifecycle.sync()
    run_days(app, clock, 70 - round((clock.now - T0) / DAY))
    return clock


def test_report_figures_match_the_history(tmp_path: Path, state_url: str) -> None:
    clock = _history(tmp_path, state_url)
    app = make_app(tmp_path, state_url, clock, anytime=True)
    with app.sessions() as session:
        report = build_report(session, T0 - DAY, clock.now)

    assert report.accounts_per_state == {"active": 4, "deleted": 1, "reminded": 1}
    assert report.overdue_now == {"EUR": Decimal("120.00")}  # late-starter; deleted is gone
    assert report.recovered == {"EUR": Decimal("360.00")}
    assert report.payments == 3
    assert (report.became_overdue, report.paid_since) == (5, 3)
    assert report.recovery_rate == 0.6
    assert report.days_to_pay == {"reminder": 2.0, "final": 2.0, "suspension": 5.0}
    assert report.payments_after == {"reminder": 1, "final": 1, "suspension": 1}
    assert (report.suspensions, report.reactivations, report.deletions) == (2, 1, 1)
    # A window that starts after the payments sees none of them.
    with app.sessions() as session:
        later = build_report(session, T0 + 50 * DAY, clock.now)
    assert later.payments == 0 and later.recovered == {} and later.deletions == 1


def test_report_command_prints_json_and_draws_a_chart(tmp_path: Path) -> None:
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    _history(tmp_path, state_url)
    config = tmp_path / "lapse.toml"
    config.write_text(
        f'[state]\nurl = "{state_url}"\n[billing]\ntype = "file"\npath = "billing.json"\n'
        '[backup.store]\ntype = "local"\npath = "backups"\n'
        '[notices.notifier]\ntype = "outbox"\npath = "outbox"\n'
    )
    chart = tmp_path / "report.png"
    # The history lies in 2026-03..05; a window from before it covers every event.
    result = subprocess.run(
        [
            LAPSE,
            "report",
            "--since",
            "2026-01-01",
            "--json",
            "--chart",
            str(chart),
            "-c",
            str(config),
        ],
        capture_output=True,
        text=True,
        check=False,
        env=os.environ.copy(),
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["recovered"] == {"EUR": "360.00"}
    assert figures["median_days_to_pay_after"] == {"reminder": 2.0, "final": 2.0, "suspension": 5.0}
    assert chart.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert chart.stat().st_size > 10_000
    assert f"chart written to {chart}" in result.stderr

    table = subprocess.run(
        [LAPSE, "report", "--since", "2026-01-01", "-c", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "recovery rate" in table.stdout and "60%" in table.stdout

    bad = subprocess.run(
        [LAPSE, "report", "--since", "last tuesday", "-c", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert "last tuesday" in bad.stderr
