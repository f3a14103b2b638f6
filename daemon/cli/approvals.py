"""The approval queue: `lapse approvals`, `lapse approve ACCOUNT`, `lapse reject ACCOUNT`."""

from __future__ import annotations

from pathlib import Path

import click

from daemon.cli.common import config_option, json_option, open_app, operator, show_json
from daemon.lifecycle.approvals import NothingToDecideError


@click.command()
@json_option
@config_option
def approvals(as_json: bool, config_path: Path | None) -> None:
    """List the phases waiting for a person's approval, oldest first."""
    app = open_app(config_path)
    waiting = app.approvals.waiting()
    if as_json:
        rows = [
            {
                "account_id": item.account_id,
                "phase": item.phase,
                "requested_at": item.requested_at.isoformat(),
                "plan": item.plan,
                "state": item.state,
                "balance": str(item.balance),
                "currency": item.currency,
            }
            for item in waiting
        ]
        show_json(rows)
        return
    if not waiting:
        click.echo("no phase waits for approval")
        return
    for item in waiting:
        click.echo(
            f"{item.account_id:<20} {item.phase:<8} since {item.requested_at:%Y-%m-%d %H:%M} UTC"
            f"  {item.balance} {item.currency}  plan {item.plan}"
        )


@click.command()
@click.argument("account")
@json_option
@config_option
def approve(account: str, as_json: bool, config_path: Path | None) -> None:
    """Approve ACCOUNT's waiting phase: the daemon runs it at its next turn, and every
    safety check (payment, backup proof at deletion) still applies then."""
    app = open_app(config_path, account)
    try:
        phase = app.approvals.approve(account, operator())
    except NothingToDecideError as error:
        raise click.ClickException(str(error)) from error
    if as_json:
        show_json({"account_id": account, "phase": phase, "approved_by": operator()})
        return
    click.echo(f"{account}: {phase} approved by {operator()}")


@click.command()
@click.argument("account")
@click.option("--reason", required=True, help="Why the phase must not run (recorded).")
@json_option
@config_option
def reject(account: str, reason: str, as_json: bool, config_path: Path | None) -> None:
    """Reject ACCOUNT's waiting phase: it is cancelled and the account put on hold."""
    app = open_app(config_path, account)
    try:
        phase = app.approvals.reject(account, operator(), reason)
    except NothingToDecideError as error:
        raise click.ClickException(str(error)) from error
    if as_json:
        show_json(
            {"account_id": account, "phase": phase, "rejected_by": operator(), "reason": reason}
        )
        return
    click.echo(f"{account}: {phase} rejected by {operator()}; the account is on hold")


COMMANDS = (approvals, approve, reject)
