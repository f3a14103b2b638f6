"""`lapse notices`: a sent notice exactly as sent, and a preview of one not sent."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from daemon.cli.common import (
    NotFoundError,
    account_argument,
    config_option,
    count_option,
    load_announced,
    open_views,
)
from daemon.domain.notice_kinds import NoticeKind
from daemon.runtime.app import open_preview


@click.group()
def notices() -> None:
    """Client notices: show one as sent, or preview one."""


@notices.command("show")
@click.argument("letter_id", type=int)
@config_option
def show(letter_id: int, config_path: Path | None) -> None:
    """Print notice LETTER_ID (see `lapse history`) byte for byte as it was sent."""
    raw = open_views(config_path)[1].letters.raw(letter_id)
    if raw is None:
        raise NotFoundError(f"no notice with id {letter_id} in the state database")
    sys.stdout.buffer.write(raw)
    sys.stdout.buffer.flush()


@notices.command("preview")
@account_argument()
@click.option(
    "--type",
    "kind",
    type=click.Choice([kind.value for kind in NoticeKind]),
    required=True,
    help="Which notice to render.",
)
@count_option("--number", 1, 1, "Reminder or warning number.")
@click.option("--html", "as_html", is_flag=True, help="Print the HTML part instead of the text.")
@config_option
def preview(account: str, kind: str, number: int, as_html: bool, config_path: Path | None) -> None:
    """Render a notice for ACCOUNT from its current data without sending or recording it.

    Deadlines the account does not have yet (a suspension date for a final notice,
    a deletion date for a suspension notice) are filled in as if it were sent now.
    It is written as it would be sent: in the client's language when there is a
    catalog of it, else the brand's (the Content-Language line says which).
    """
    config = load_announced(config_path)
    message = open_preview(config, create=False).render(account, NoticeKind(kind), number)
    # Content-Language: the language the notice is written in (the client's or the brand's).
    for header in ("From", "To", "Subject", "Date", "Content-Language"):
        click.echo(f"{header}: {message[header]}")
    click.echo()
    part = message.get_body(preferencelist=("html",) if as_html else ("plain",))
    assert part is not None  # compose always writes both parts
    click.echo(part.get_content())


COMMANDS = (notices,)
