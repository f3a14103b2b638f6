"""`lapse brake`: see and release the safety brake."""

from __future__ import annotations

from pathlib import Path

import click

from daemon.cli.common import config_option, json_option, open_app, operator, show_json


@click.group()
def brake() -> None:
    """The safety brake that holds the lifecycle when billing data looks wrong."""


@brake.command("status")
@json_option
@config_option
def status(as_json: bool, config_path: Path | None) -> None:
    """Say whether the brake is engaged, since when and why."""
    app = open_app(config_path)
    engaged = app.lifecycle.brake.status()
    if as_json:
        show_json(
            {
                "engaged": engaged is not None,
                "since": engaged["since"] if engaged else None,
                "reason": engaged["reason"] if engaged else None,
            }
        )
        return
    if engaged is None:
        click.echo("safety brake: released (the lifecycle runs)")
        return
    click.echo(f"safety brake: ENGAGED since {engaged['since']}")
    click.echo(f"  {engaged['reason']}")
    click.echo("  check the billing data, then: lapse brake release")


@brake.command("release")
@json_option
@config_option
def release(as_json: bool, config_path: Path | None) -> None:
    """Release the brake: the next sync is applied as billing reports it."""
    app = open_app(config_path)
    try:
        released = app.lifecycle.brake.release(operator())
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    if as_json:
        show_json(
            {"released_by": operator(), "since": released["since"], "reason": released["reason"]}
        )
        return
    click.echo(f"safety brake released by {operator()} (was: {released['reason']})")


COMMANDS = (brake,)
