"""`lapse notices preview` names the instants the lifecycle then sets and sends (invariant 3).

The preview and the lifecycle engine run against one real state database (SQLite and
PostgreSQL) on a virtual clock. The final notice falls due at 19:59:30 on a Friday in
Berlin, so the suspension instant needs both the policy's minute rounding (a week
later is 19:59:30, rounded up to 20:00) and its contact hours (20:00 starts the quiet
hours of a Friday, so the suspension moves to Monday 08:00); the plain notice period
added to the composition time names neither.
"""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

from daemon.domain.clock import VirtualClock
from daemon.domain.notice_kinds import NoticeKind
from daemon.domain.states import State
from daemon.runtime.app import App, open_preview
from tests.lab.engine_helpers import account, make_app, run_days, write_billing

# Friday 6 February 2026, 19:59:30 in Berlin (CET): four weeks later the final notice is
# due at the same wall time, on Friday 6 March.
DUE = datetime(2026, 2, 6, 18, 59, 30, tzinfo=UTC)
FINAL_DUE = DUE + timedelta(days=28)
# Monday 16 March, 08:00 in Berlin; thirty days on, Wednesday 15 April 09:00 (summer time).
SUSPEND_AT = datetime(2026, 3, 16, 7, 0, tzinfo=UTC)
DELETE_AT = datetime(2026, 4, 15, 7, 0, tzinfo=UTC)


def _reminded_up_to_the_final_notice(tmp_path: Path, state_url: str) -> tuple[App, VirtualClock]:
    """An app whose account `acme` has had its three reminders, with the clock standing at
    the instant its final notice is due (and not yet sent)."""
    clock = VirtualClock(DUE)
    write_billing(tmp_path / "billing.json", [account("acme", DUE)])
    app = make_app(tmp_path, state_url, clock)
    app.lifecycle.sync()
    run_days(app, clock, 27)
    waiting = app.readers.accounts.view("acme")
    assert (waiting.record.state, waiting.record.reminders_sent) == (State.REMINDED, 3)
    assert waiting.next_wake_at == FINAL_DUE
    clock.set(FINAL_DUE)
    return app, clock


def _sent_final_notice(app: App) -> EmailMessage:
    """The final notice the lifecycle sent acme, parsed from the bytes it kept."""
    (letter,) = [
        letter for letter in app.readers.history.of("acme").letters if letter.notice == "final"
    ]
    raw = app.readers.letters.raw(letter.id)
    assert raw is not None
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def test_a_previewed_final_notice_names_the_instants_the_lifecycle_sets_and_sends(
    tmp_path: Path, state_url: str
) -> None:
    app, clock = _reminded_up_to_the_final_notice(tmp_path, state_url)
    preview = open_preview(app.config, clock)
    previewed = preview.request("acme", NoticeKind.FINAL)
    previewed_text = _text(preview.render("acme", NoticeKind.FINAL))

    app.lifecycle.wake("acme")

    final = app.readers.accounts.view("acme").record
    assert final.state is State.FINAL_NOTICE
    assert (final.suspend_at, final.delete_at) == (SUSPEND_AT, DELETE_AT)
    assert (previewed.record.suspend_at, previewed.record.delete_at) == (SUSPEND_AT, DELETE_AT)
    # The sum without the policy's rounding and contact hours would have named another time.
    assert FINAL_DUE + previewed.policy.notice_period != SUSPEND_AT
    assert previewed_text == _text(_sent_final_notice(app))
