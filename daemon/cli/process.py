"""Commands that run or prepare the daemon: run, check-config, migrate."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import NoReturn

import click

from daemon.backup.protection import check_store_protection
from daemon.cli.common import (
    announce,
    config_option,
    json_option,
    load_announced,
    read_config,
    resolve_config_path,
    show_json,
)
from daemon.config import ConfigError
from daemon.domain.clock import system_clock
from daemon.runtime import collector
from daemon.runtime.app import build_app, prepare_embedded_data
from daemon.runtime.leadership import Leadership
from daemon.runtime.logs import configure_logging
from daemon.runtime.probes import deep_check
from daemon.runtime.service import serve
from daemon.runtime.state import migrate_state, state_url_of
from daemon.store.writer_lock import WriterLock, acquire_writer_lock, shares_daemons


@click.command()
@click.option("--once", is_flag=True, help="Sync billing and act on what is due once, then exit.")
@config_option
def run(once: bool, config_path: Path | None) -> None:
    """Run the daemon: sync billing, send notices, act at each deadline (creates the state
    database if it does not exist yet)."""
    config_path = resolve_config_path(config_path)
    config = read_config(config_path)
    announce(config_path, config)
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
        collector.settle()
        if once:
            with collector.spaced():
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
@click.option(
    "--deep",
    is_flag=True,
    help="Also read every secret and reach the state database, the billing source, each "
    "host (SSH, host key checked), the backup store (write, read, delete a probe) and SMTP "
    "(EHLO, login).",
)
@json_option
@config_option
def check_config(deep: bool, as_json: bool, config_path: Path | None) -> None:
    """Validate a config file and report every problem at once (exit 1 if any); ask the
    backup bucket whether it has Object Lock. With --deep, reach every part the config
    names and print OK or the reason for each (exit 1 if any fails)."""
    config_path = resolve_config_path(config_path)
    source = str(config_path or "embedded defaults")
    try:
        config = read_config(config_path)
    except ConfigError as error:
        _config_problems(source, error.problems, [], as_json)
    protection = check_store_protection(config.backup.store)
    if protection.errors:
        _config_problems(
            source,
            [f"{source}: {line}" for line in protection.errors],
            protection.warnings,
            as_json,
        )
    summary = (
        f"{config.billing.type} billing, {len(config.policy)} policy table(s), "
        f"{len(config.hosts)} host(s)"
    )
    probes = deep_check(config) if deep else []
    failed = [probe for probe in probes if not probe.ok]
    if as_json:
        show_json(
            {
                "config": source,
                "ok": not failed,
                "problems": [f"{p.part}: {p.detail}" for p in failed],
                "warnings": protection.warnings,
                "checks": [dataclasses.asdict(probe) for probe in probes],
            }
        )
        if failed:
            sys.exit(1)
        return
    for line in protection.warnings:
        click.echo(f"{source}: warning: {line}", err=True)
    for probe in probes:
        click.echo(f"  {'OK  ' if probe.ok else 'FAIL'}  {probe.part}: {probe.detail}")
    if failed:
        click.echo(f"{source}: {len(failed)} of {len(probes)} check(s) failed", err=True)
        sys.exit(1)
    click.echo(f"{source}: OK ({summary})")


def _config_problems(
    source: str, problems: list[str], warnings: list[str], as_json: bool
) -> NoReturn:
    """Report the config's problems (and warnings), then exit 1."""
    if as_json:
        show_json({"config": source, "ok": False, "problems": problems, "warnings": warnings})
        sys.exit(1)
    for line in warnings:
        click.echo(f"{source}: warning: {line}", err=True)
    for problem in problems:
        click.echo(problem, err=True)
    click.echo(f"{len(problems)} problem(s) found", err=True)
    sys.exit(1)


@click.command("migrate")
@json_option
@config_option
def migrate_command(as_json: bool, config_path: Path | None) -> None:
    """Create the state database, or bring it to the newest schema."""
    revision = migrate_state(load_announced(config_path).state)
    if as_json:
        show_json({"revision": revision})
    else:
        click.echo(f"state database at revision {revision}")


COMMANDS = (run, check_config, migrate_command)
