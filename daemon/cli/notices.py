"""`lapse notices`: a sent notice exactly as sent, and a preview of one not sent."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import click

from daemon.billing.dispatch import create_source
from daemon.cli.common import config_option, read_config
from daemon.config.schema import PolicyConfig
from daemon.domain.clock import system_clock
from daemon.domain.errors import UnknownAccountError
from daemon.domain.notice_kinds import NoticeKind
from daemon.domain.snapshot import AccountSnapshot
from daemon.notices.compose import compose
from daemon.notices.request import NoticeRequest
from daemon.notices.templates import create_environment
from daemon.policy import LifecycleRecord
from daemon.policy.instants import removal_instant, suspension_instant
from daemon.runtime.app import open_state
from daemon.store.migrate import migrate
from daemon.store.models import Account, Correspondence
from daemon.store.records import record_from_row, stored_snapshot


@click.group()
def notices() -> None:
    """Client notices: show one as sent, or preview one."""


@notices.command("show")
@click.argument("letter_id", type=int)
@config_option
def show(letter_id: int, config_path: Path | None) -> None:
    """Print notice LETTER_ID (see `lapse history`) byte for byte as it was sent."""
    engine, sessions = open_state(read_config(config_path))
    migrate(engine)
    with sessions() as session:
        letter = session.get(Correspondence, letter_id)
        if letter is None:
            raise click.ClickException(f"no notice with id {letter_id} in the state database")
        raw = letter.raw
    sys.stdout.buffer.write(raw)
    sys.stdout.buffer.flush()


@notices.command("preview")
@click.argument("account")
@click.option(
    "--type",
    "kind",
    type=click.Choice([kind.value for kind in NoticeKind]),
    required=True,
    help="Which notice to render.",
)
@click.option("--number", default=1, show_default=True, help="Reminder or warning number.")
@click.option("--html", "as_html", is_flag=True, help="Print the HTML part instead of the text.")
@config_option
def preview(account: str, kind: str, number: int, as_html: bool, config_path: Path | None) -> None:
    """Render a notice for ACCOUNT from its current data without sending or recording it.

    Deadlines the account does not have yet (a suspension date for a final notice,
    a deletion date for a suspension notice) are filled in as if it were sent now.
    """
    config = read_config(config_path)
    engine, sessions = open_state(config)
    migrate(engine)
    with sessions() as session:
        row = session.get(Account, account)
        snapshot = stored_snapshot(row) if row is not None else None
        record = record_from_row(row) if row is not None else LifecycleRecord(account_id=account)
    if snapshot is None:
        snapshot = create_source(config.billing).fetch_one(account)
    if snapshot is None:
        raise UnknownAccountError(f"no account {account!r} in the state database or billing")
    now = system_clock()
    policy = config.policy_for(snapshot.plan)
    record = with_deadlines(record, snapshot, policy, now)
    notice = NoticeKind(kind)
    request = NoticeRequest(
        notice, number if notice.facts.numbered else 0, snapshot, record, policy, now
    )
    environment = create_environment(config.notices.templates_dir)
    message = compose(request, config.notices.brand, environment)
    for header in ("From", "To", "Subject", "Date"):
        click.echo(f"{header}: {message[header]}")
    click.echo()
    part = message.get_body(preferencelist=("html",) if as_html else ("plain",))
    assert part is not None  # compose always writes both parts
    click.echo(part.get_content())


def with_deadlines(
    record: LifecycleRecord, snapshot: AccountSnapshot, policy: PolicyConfig, now: datetime
) -> LifecycleRecord:
    """Return `record` with the deadlines it lacks filled in as a final notice composed at
    `now` would set them: by the functions the policy uses (invariant 3), so a preview
    prints the instants the real notice would."""
    zone = snapshot.contact.timezone
    suspend_at = record.suspend_at or suspension_instant(now, policy, zone)
    return record.evolve(
        suspend_at=suspend_at,
        delete_at=record.delete_at or removal_instant(suspend_at, policy, zone),
    )


COMMANDS = (notices,)
