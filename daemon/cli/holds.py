"""Operator overrides of the lifecycle: hold and release, suspend and unsuspend."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from daemon.cli.common import config_option, operator, parse_when, read_config
from daemon.domain.states import ActionStatus
from daemon.policy import commands
from daemon.runtime.app import App, build_app


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


@click.command()
@click.argument("account")
@click.option("--reason", required=True, help="Why the site is taken down (recorded).")
@click.option("--queue-only", is_flag=True, help="Leave the suspend phase to the daemon.")
@config_option
def suspend(account: str, reason: str, queue_only: bool, config_path: Path | None) -> None:
    """Suspend ACCOUNT now, paid or not, until `lapse unsuspend` (no client notice is sent).

    The suspend phase of the host's playbook runs at once (backup, maintenance page,
    logins revoked); no removal deadline runs while ops keep the account suspended.
    """
    app = build_app(read_config(config_path))
    decision = app.lifecycle.apply_command(account, commands.suspend, operator(), reason=reason)
    click.echo(f"{account}: {decision.from_state} -> {decision.record.label} ({decision.reason})")
    _run_phases(app, account, queue_only)


@click.command()
@click.argument("account")
@click.option("--reason", default="", help="Why the site comes back (recorded).")
@click.option(
    "--until",
    "until_text",
    help="For a suspension for non-payment: when the suspension comes back unless paid.",
)
@click.option("--queue-only", is_flag=True, help="Leave the unsuspend phase to the daemon.")
@config_option
def unsuspend(
    account: str, reason: str, until_text: str | None, queue_only: bool, config_path: Path | None
) -> None:
    """Bring ACCOUNT's site back now.

    An ops suspension ends. A suspension for non-payment becomes an ops hold with
    the site back, until `lapse release` (or --until); a payment reactivates the
    account as usual, and without one the suspension comes again when the hold ends.
    """
    until = parse_when(until_text) if until_text else None
    app = build_app(read_config(config_path))
    decision = app.lifecycle.apply_command(
        account, commands.unsuspend, operator(), reason=reason, until=until
    )
    click.echo(f"{account}: {decision.from_state} -> {decision.record.label} ({decision.reason})")
    _run_phases(app, account, queue_only)


def _run_phases(app: App, account: str, queue_only: bool) -> None:
    """Run the playbook phases the command queued (unless `queue_only`); exit 1 if one
    did not finish."""
    if queue_only:
        click.echo(f"{account}: queued for the daemon")
        return
    try:
        outcomes = app.runner.run_queued(account)
    finally:
        app.transports.close()
    for phase, status in outcomes:
        click.echo(f"{account}: {phase} phase {status}")
    if any(status != ActionStatus.DONE for _, status in outcomes):
        sys.exit(1)


COMMANDS = (hold, release, suspend, unsuspend)
