"""`lapse config`: the example configuration, written from the schema."""

from __future__ import annotations

import click

from daemon.config.example import render_example


@click.group("config")
def config_group() -> None:
    """The configuration file: an example with every option, described."""


@config_group.command("example")
def example() -> None:
    """Print a configuration with every table and option, each described, the optional
    ones commented out with their defaults; config.example.toml is this output."""
    click.echo(render_example(), nl=False)


COMMANDS = (config_group,)
