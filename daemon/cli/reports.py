"""`lapse report`: accounts per stage, what is overdue and what dunning recovered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from daemon.app import open_state
from daemon.cli.common import (
    config_option,
    json_option,
    parse_when,
    read_config,
    show_json,
    show_table,
)
from daemon.reports.figures import Report, build_report
from daemon.store.migrate import migrate

_DEFAULT_WINDOW = timedelta(days=30)


@click.command()
@click.option(
    "--since", "since_text", help="Start of the window (date or datetime; default: 30 days ago)."
)
@click.option(
    "--chart",
    "chart_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also draw a PNG chart to this file.",
)
@json_option
@config_option
def report(
    since_text: str | None, chart_path: Path | None, as_json: bool, config_path: Path | None
) -> None:
    """Accounts per stage, amounts overdue and recovered, recovery rate, median days to
    pay after each notice type, suspensions, reactivations and deletions since a date.

    --json keys: since, until, accounts_per_state, overdue_now and recovered
    (currency -> amount as a string), payments, became_overdue, paid_since,
    recovery_rate, median_days_to_pay_after and payments_after (notice type ->
    days or count), suspensions, reactivations, deletions.
    """
    until = datetime.now(UTC)
    since = parse_when(since_text) if since_text else until - _DEFAULT_WINDOW
    if since >= until:
        raise click.BadParameter(f"{since_text!r} is not in the past", param_hint="--since")
    engine, sessions = open_state(read_config(config_path))
    migrate(engine)
    with sessions() as session:
        figures = build_report(session, since, until)
    if as_json:
        show_json(figures.as_dict())
    else:
        _show(figures)
    if chart_path is not None:
        from daemon.reports.chart import write_chart  # matplotlib only when asked

        write_chart(figures, chart_path)
        click.echo(f"chart written to {chart_path}", err=as_json)


def _show(figures: Report) -> None:
    """Print the report as three small tables."""
    window = f"{figures.since:%Y-%m-%d %H:%M} to {figures.until:%Y-%m-%d %H:%M} UTC"
    show_table(
        "accounts per stage (now)",
        ["stage", "accounts"],
        sorted(figures.accounts_per_state.items()),
    )
    currencies = sorted(set(figures.overdue_now) | set(figures.recovered))
    show_table(
        f"money ({window})",
        ["currency", "overdue now", "recovered"],
        [[c, figures.overdue_now.get(c, 0), figures.recovered.get(c, 0)] for c in currencies],
    )
    rate = figures.recovery_rate
    rows: list[list[object]] = [
        ["turned overdue", figures.became_overdue],
        ["of them paid since", figures.paid_since],
        ["recovery rate", "-" if rate is None else f"{rate:.0%}"],
        ["payments", figures.payments],
        *[
            [f"median days to pay after {kind} ({figures.payments_after[kind]} payments)", days]
            for kind, days in sorted(figures.days_to_pay.items())
        ],
        ["suspensions", figures.suspensions],
        ["reactivations", figures.reactivations],
        ["deletions", figures.deletions],
    ]
    show_table(f"lifecycle ({window})", ["figure", "value"], rows)


COMMANDS = (report,)
