"""Commands that run or prepare the daemon: run, check-config, migrate."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from daemon.backup.protection import check_store_protection
from daemon.cli.common import config_option, read_config
from daemon.config import ConfigError
from daemon.domain.clock import system_clock
from daemon.runtime.app import build_app, migrate_state, prepare_embedded_data, state_url_of
from daemon.runtime.leadership import Leadership
from daemon.runtime.logs import configure_logging
from daemon.runtime.service import serve
from daemon.store.writer_lock import WriterLock, acquire_writer_lock, shares_daemons


@click.command()
@click.option("--once", is_flag=True, help="Sync billing and act on what is due once, then exit.")
@config_option
def run(once: bool, config_path: Path | None) -> None:
    """Run the daemon: sync billing, send notices, act at each deadline."""
    config = read_config(config_path)
    configure_logging(config.daemon.log_level, config.daemon.log_format)
    url = state_url_of(config.state)
    # Before anything is written (the migration included): on SQLite one daemon per state
    # database, and `--once` never beside a running daemon. Daemons sharing a PostgreSQL
    # database elect a leader as they run (daemon.runtime.leadership).
    shared = shares_daemons(url) and not once
    lock = WriterLock() if shared else acquire_writer_lock(url)
    try:
        if config_path is None:
            prepare_embedded_data(config.billing, system_clock())
        app = build_app(config)
        if once:
            report = app.lifecycle.sync()
            click.echo(report.summary())
            ran = app.runner.run_pending()
            if ran:
                click.echo(f"{ran} playbook phase(s) run")
            app.transports.close()
            return
        reload_config = (lambda: read_config(config_path)) if config_path else None
        leadership = Leadership(url, None if shared else lock)
        status = serve(app, reload_config=reload_config, leadership=leadership)
    finally:
        lock.release()
    sys.exit(status)


@click.command("check-config")
@config_option
def check_config(config_path: Path | None) -> None:
    """Validate a config file and report every problem at once (exit 1 if any); ask the
    backup bucket whether it has Object Lock."""
    try:
        config = read_config(config_path)
    except ConfigError as error:
        for problem in error.problems:
            click.echo(problem, err=True)
        click.echo(f"{len(error.problems)} problem(s) found", err=True)
        sys.exit(1)
    source = config_path or "embedded defaults"
    protection = check_store_protection(config.backup.store)
    for line in protection.warnings:
        click.echo(f"{source}: warning: {line}", err=True)
    if protection.errors:
        for line in protection.errors:
            click.echo(f"{source}: {line}", err=True)
        click.echo(f"{len(protection.errors)} problem(s) found", err=True)
        sys.exit(1)
    click.echo(
        f"{source}: OK ({config.billing.type} billing, {len(config.policy)} policy table(s), "
        f"{len(config.hosts)} host(s))"
    )


@click.command("migrate")
@config_option
def migrate_command(config_path: Path | None) -> None:
    """Bring the state database to the newest schema."""
    revision = migrate_state(read_config(config_path).state)
    click.echo(f"state database at revision {revision}")


COMMANDS = (run, check_config, migrate_command)
