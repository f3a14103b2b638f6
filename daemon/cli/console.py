"""`lapse console`: tools for the operator console (docs/console.md)."""

from __future__ import annotations

import sys

import click

from daemon.runtime.console.auth import hash_password


@click.group()
def console() -> None:
    """The operator console: a web dashboard served by the daemon ([console])."""


@console.command("hash-password")
@click.option("--stdin", "from_stdin", is_flag=True, help="Read the password from standard input.")
def hash_password_command(from_stdin: bool) -> None:
    """Print the argon2 hash of a password, for a [console.users] entry's password_hash."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise click.ClickException("an empty password is refused")
    click.echo(hash_password(password))


COMMANDS = (console,)
