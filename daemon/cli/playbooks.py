"""Playbook commands for operators: check playbooks, preview a phase, run verify/restore,
retry a failed phase."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from daemon.cli.common import (
    account_argument,
    config_option,
    json_option,
    load_announced,
    open_app,
    operator,
    show_json,
)
from daemon.config.load import ConfigError
from daemon.domain.phases import PLAYBOOK_PHASES, OperatorPhase
from daemon.domain.states import ActionStatus
from daemon.playbooks.library import PlaybookLibrary, load_playbook
from daemon.playbooks.steps import STEP_TYPES


@click.group()
def playbook() -> None:
    """Check, preview and run playbooks."""


@playbook.command("check")
@click.argument("files", nargs=-1, type=click.Path(path_type=Path, dir_okay=False))
@config_option
def check(files: tuple[Path, ...], config_path: Path | None) -> None:
    """Validate playbook FILES (default: every playbook Lapse can find); exit 1 on errors."""
    if not files:
        library = PlaybookLibrary(load_announced(config_path, uses_state=False).playbooks_dir)
        files = tuple(sorted(p for d in library.directories for p in d.glob("*.toml")))
    problems = 0
    for path in files:
        try:
            loaded = load_playbook(path)
        except ConfigError as error:
            for problem in error.problems:
                click.echo(problem, err=True)
            problems += len(error.problems)
            continue
        counts = ", ".join(f"{phase} {len(loaded.steps(phase))}" for phase in PLAYBOOK_PHASES)
        click.echo(f"{path}: OK ({counts} steps)")
    if problems:
        click.echo(f"{problems} problem(s) found", err=True)
        sys.exit(1)


@playbook.command("show")
@account_argument()
@click.argument("phase", type=click.Choice([phase.value for phase in PLAYBOOK_PHASES]))
@config_option
def show(account: str, phase: str, config_path: Path | None) -> None:
    """Print the steps PHASE would run for ACCOUNT, rendered, without running anything."""
    app = open_app(config_path, account)
    runner = app.runner
    snapshot = app.readers.accounts.stored(account).snapshot
    for service in snapshot.services if snapshot else ():
        host = app.config.hosts.get(service.host)
        if host is None:
            click.echo(f"# host {service.host}: not in the config's [hosts] table")
            continue
        loaded = runner.library.get(host.playbook)
        context = runner.preview_context(account, phase, service, loaded)
        click.echo(f"# {phase} of {account} on {service.host} (playbook {host.playbook})")
        for number, spec in enumerate(loaded.steps(phase), start=1):
            when = f"  [when {spec.when}]" if spec.when else ""
            click.echo(f"\n## {number}. {spec.name} ({spec.type}){when}")
            click.echo(STEP_TYPES[spec.type].describe(spec, context).strip())


@playbook.command("run")
@account_argument()
@click.argument("phase", type=click.Choice([phase.value for phase in OperatorPhase]))
@json_option
@config_option
def run(account: str, phase: str, as_json: bool, config_path: Path | None) -> None:
    """Run PHASE (verify or restore) of ACCOUNT's playbook now; exit 1 if it fails."""
    app = open_app(config_path, account)
    try:
        status = app.runner.run_phase(account, phase)
    finally:
        app.transports.close()
    if as_json:
        show_json({"account_id": account, "phase": phase, "status": status})
    else:
        click.echo(f"{account}: {phase} {status}")
    if status != ActionStatus.DONE:
        sys.exit(1)


@click.command()
@account_argument()
@json_option
@config_option
def retry(account: str, as_json: bool, config_path: Path | None) -> None:
    """Run ACCOUNT's failed suspend or delete phase again, from the step that failed."""
    app = open_app(config_path, account)
    try:
        status = app.runner.retry(account, operator())
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    finally:
        app.transports.close()
    if as_json:
        show_json({"account_id": account, "status": status})
    else:
        click.echo(f"{account}: retried, {status}")
    if status != ActionStatus.DONE:
        sys.exit(1)


COMMANDS = (playbook, retry)
