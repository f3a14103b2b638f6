"""Looking ahead without side effects: plan and simulate."""

from __future__ import annotations

import dataclasses
import tempfile
from datetime import timedelta
from pathlib import Path

import click

from daemon.billing.file import FileSource
from daemon.billing.samples import write_sample_billing
from daemon.cli.common import (
    config_option,
    count_option,
    json_option,
    load_announced,
    open_views,
    parse_when,
    show_json,
    show_table,
)
from daemon.config.schema import FileBilling
from daemon.domain.clock import system_clock
from daemon.policy import LifecycleRecord
from daemon.policy.projection import ProjectedStep, project_all


@click.command()
@count_option("--days", 14, 0, "How far ahead to look.")
@json_option
@config_option
def plan(days: int, as_json: bool, config_path: Path | None) -> None:
    """Show what will happen to whom and when if nobody pays (changes nothing)."""
    config, readers = open_views(config_path)
    now = system_clock()
    accounts = readers.accounts.synced()
    steps = project_all(accounts, config.policy_for, now, now + timedelta(days=days))
    _print_steps(steps, as_json, f"planned for the next {days} days")


@click.command()
@count_option("--days", 70, 0, "How many days to simulate.")
@click.option(
    "--billing",
    "billing_path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="A billing file (JSON or CSV) to simulate; the bundled sample data by default.",
)
@click.option("--start", "start_text", help="Virtual start time (default: now).")
@json_option
@config_option
def simulate(
    days: int,
    billing_path: Path | None,
    start_text: str | None,
    as_json: bool,
    config_path: Path | None,
) -> None:
    """Run the configured policy over sample or given data on a virtual clock (reads no
    state database)."""
    config = load_announced(config_path, uses_state=False)
    start = parse_when(start_text) if start_text else system_clock()
    # Without --billing, the sample is written for this start and read once: nothing of
    # it is kept.
    with tempfile.TemporaryDirectory(prefix="lapse-simulate-") as directory:
        if billing_path is None:
            billing_path = Path(directory) / "sample-billing.json"
            write_sample_billing(billing_path, start)
        result = FileSource(FileBilling(type="file", path=billing_path)).fetch_all()
    for error in result.errors:
        click.echo(f"skipped: {error}", err=True)
    accounts = [(s, LifecycleRecord(account_id=s.account_id)) for s in result.snapshots]
    steps = project_all(accounts, config.policy_for, start, start + timedelta(days=days))
    _print_steps(steps, as_json, f"simulated {days} days from {start:%Y-%m-%d %H:%M} UTC")


def _print_steps(steps: list[ProjectedStep], as_json: bool, title: str) -> None:
    if as_json:
        show_json([dataclasses.asdict(step) for step in steps])
        return
    rows = [
        [s.at, s.account_id, f"{s.from_state} -> {s.to_state}", ", ".join(s.actions), s.reason]
        for s in steps
    ]
    show_table(title, ["when", "account_id", "transition", "actions", "why"], rows)


COMMANDS = (plan, simulate)
