"""Operator overrides of the lifecycle: hold and release, suspend and unsuspend."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from daemon.cli.common import (
    account_argument,
    config_option,
    json_option,
    open_app,
    operator,
    parse_when,
    show_json,
)
from daemon.domain.states import ActionStatus
from daemon.policy import commands
from daemon.policy.model import Decision
from daemon.runtime.app import App


@click.command()
@account_argument()
@click.option("--reason", required=True, help="Why the account is held (recorded).")
@click.option("--until", "until_text", help="When the hold ends by itself (date or datetime).")
@click.option("--legal", is_flag=True, help="A legal hold: no deletion, no expiry, no end date.")
@json_option
@config_option
def hold(
    account: str,
    reason: str,
    until_text: str | None,
    legal: bool,
    as_json: bool,
    config_path: Path | None,
) -> None:
    """Stop the lifecycle clock for ACCOUNT until released (or --until)."""
    until = parse_when(until_text) if until_text else None
    app = open_app(config_path, account)
    decision = app.lifecycle.apply_command(
        account, commands.hold, operator(), reason=reason, until=until, legal=legal
    )
    _report(account, decision, [], as_json)


@click.command()
@account_argument()
@json_option
@config_option
def release(account: str, as_json: bool, config_path: Path | None) -> None:
    """End the hold on ACCOUNT; its deadlines move forward by the time held."""
    app = open_app(config_path, account)
    decision = app.lifecycle.apply_command(account, commands.release, operator())
    _report(account, decision, [], as_json)


@click.command()
@account_argument()
@click.option("--reason", required=True, help="Why the site is taken down (recorded).")
@click.option("--queue-only", is_flag=True, help="Leave the suspend phase to the daemon.")
@json_option
@config_option
def suspend(
    account: str, reason: str, queue_only: bool, as_json: bool, config_path: Path | None
) -> None:
    """Suspend ACCOUNT now, paid or not, until `lapse unsuspend` (no client notice is sent).

    The suspend phase of the host's playbook runs at once (backup, maintenance page,
    logins revoked); no removal deadline runs while ops keep the account suspended.
    """
    app = open_app(config_path, account)
    decision = app.lifecycle.apply_command(account, commands.suspend, operator(), reason=reason)
    _finish(app, account, decision, queue_only, as_json)


@click.command()
@account_argument()
@click.option("--reason", default="", help="Why the site comes back (recorded).")
@click.option(
    "--until",
    "until_text",
    help="For a suspension for non-payment: when the suspension comes back unless paid.",
)
@click.option("--queue-only", is_flag=True, help="Leave the unsuspend phase to the daemon.")
@json_option
@config_option
def unsuspend(
    account: str,
    reason: str,
    until_text: str | None,
    queue_only: bool,
    as_json: bool,
    config_path: Path | None,
) -> None:
    """Bring ACCOUNT's site back now.

    An ops suspension ends. A suspension for non-payment becomes an ops hold with
    the site back, until `lapse release` (or --until); a payment reactivates the
    account as usual, and without one the suspension comes again when the hold ends.
    """
    until = parse_when(until_text) if until_text else None
    app = open_app(config_path, account)
    decision = app.lifecycle.apply_command(
        account, commands.unsuspend, operator(), reason=reason, until=until
    )
    _finish(app, account, decision, queue_only, as_json)


def _finish(app: App, account: str, decision: Decision, queue_only: bool, as_json: bool) -> None:
    """Run the playbook phases the command queued (unless `queue_only`), report the
    transition and each phase, and exit 1 if a phase did not finish."""
    if not as_json:
        # Said before the phases run: a suspend phase may take minutes.
        _report(account, decision, [], as_json=False)
    outcomes: list[tuple[str, ActionStatus]] = []
    if queue_only:
        if not as_json:
            click.echo(f"{account}: queued for the daemon")
    else:
        try:
            outcomes = app.runner.run_queued(account)
        finally:
            app.transports.close()
    if as_json:
        _report(account, decision, outcomes, as_json=True)
    else:
        for phase, status in outcomes:
            click.echo(f"{account}: {phase} phase {status}")
    if any(status != ActionStatus.DONE for _, status in outcomes):
        sys.exit(1)


def _report(
    account: str, decision: Decision, outcomes: list[tuple[str, ActionStatus]], as_json: bool
) -> None:
    """Print the transition as a line, or with the phases run as one JSON record."""
    if as_json:
        record: dict[str, Any] = {
            "account_id": account,
            "from_state": decision.from_state,
            "state": decision.record.label,
            "reason": decision.reason,
            "phases": [{"phase": phase, "status": status} for phase, status in outcomes],
        }
        show_json(record)
        return
    click.echo(f"{account}: {decision.from_state} -> {decision.record.label} ({decision.reason})")


COMMANDS = (hold, release, suspend, unsuspend)
