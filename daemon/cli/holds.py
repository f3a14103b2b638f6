"""Operator overrides of the lifecycle clock: hold and release."""

from __future__ import annotations

from pathlib import Path

import click

from daemon.app import build_app
from daemon.cli.common import config_option, operator, parse_when, read_config
from daemon.policy import commands


@click.command()
@click.argument("account")
@click.option("--reason", required=True, help="Why the account is held (recorded).")
@click.option("--until", "until_text", help="When the hold ends by itself (date or datetime).")
@click.option("--legal", is_flag=True, help="A legal hold: no deletion, no expiry, no end date.")
@config_option
def hold(
    account: str, reason: str, until_text: str | None, legal: bool, config_path: Path | None
) -> None:
    """Stop the lifecycle clock for ACCOUNT until released (or --until)."""
    until = parse_when(until_text) if until_text else None
    app = build_app(read_config(config_path))
    decision = app.lifecycle.apply_command(
        account, commands.hold, operator(), reason=reason, until=until, legal=legal
    )
    click.echo(f"{account}: {decision.from_state} -> {decision.record.label} ({decision.reason})")


@click.command()
@click.argument("account")
@config_option
def release(account: str, config_path: Path | None) -> None:
    """End the hold on ACCOUNT; its deadlines move forward by the time held."""
    app = build_app(read_config(config_path))
    decision = app.lifecycle.apply_command(account, commands.release, operator())
    click.echo(f"{account}: {decision.from_state} -> {decision.record.label} ({decision.reason})")


COMMANDS = (hold, release)
