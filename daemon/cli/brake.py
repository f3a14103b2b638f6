"""`lapse brake`: see and release the safety brake."""

from __future__ import annotations

from pathlib import Path

import click

from daemon.cli.common import config_option, operator, read_config
from daemon.runtime.app import build_app


@click.group()
def brake() -> None:
    """The safety brake that holds the lifecycle when billing data looks wrong."""


@brake.command("status")
@config_option
def status(config_path: Path | None) -> None:
    """Say whether the brake is engaged, since when and why."""
    app = build_app(read_config(config_path))
    engaged = app.lifecycle.brake.status()
    if engaged is None:
        click.echo("safety brake: released (the lifecycle runs)")
        return
    click.echo(f"safety brake: ENGAGED since {engaged['since']}")
    click.echo(f"  {engaged['reason']}")
    click.echo("  check the billing data, then: lapse brake release")


@brake.command("release")
@config_option
def release(config_path: Path | None) -> None:
    """Release the brake: the next sync is applied as billing reports it."""
    app = build_app(read_config(config_path))
    try:
        released = app.lifecycle.brake.release(operator())
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"safety brake released by {operator()} (was: {released['reason']})")


COMMANDS = (brake,)
