"""`lapse report`: accounts per stage, what is overdue and what dunning recovered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from daemon.cli.common import (
    config_option,
    json_option,
    open_views,
    parse_when,
    show_json,
    show_table,
)
from daemon.reports.figures import MonthlyMoney, Report

_DEFAULT_WINDOW = timedelta(days=30)


def _since(ctx: click.Context, param: click.Parameter, text: str | None) -> datetime | None:
    """Parse --since (a date, or a date and time; UTC unless it names a zone).

    Returns None when not given. Raises click.BadParameter, which click reports
    with the option's name and exit status 2, for anything else or a future time.
    """
    if text is None:
        return None
    since = parse_when(text)
    if since >= datetime.now(UTC):
        raise click.BadParameter(f"{text!r} is not in the past")
    return since


@click.command()
@click.option(
    "--since",
    callback=_since,
    metavar="DATE",
    help="Start of the window, e.g. 2026-03-01 (default: 30 days ago).",
)
@click.option(
    "--chart",
    "chart_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also draw a PNG chart to this file: accounts per stage, and one panel per "
    "currency with what was recovered each month and what is overdue now.",
)
@json_option
@config_option
def report(
    since: datetime | None, chart_path: Path | None, as_json: bool, config_path: Path | None
) -> None:
    """Accounts per stage, amounts overdue and recovered, recovery rate, median days
    to pay after each notice type, suspensions, reactivations and deletions since DATE.

    \b
    --json prints one object with these keys:
      since, until                ISO 8601 UTC times of the window
      accounts_per_state          every state -> accounts in it now
      overdue_now, recovered      currency -> amount as a decimal string
      payments                    payments in the window
      became_overdue, paid_since  accounts that fell into dunning in the window;
                                  of them, those that paid since
      recovery_rate               paid_since / became_overdue (null if none)
      median_days_to_pay_after    each notice type that asks for money (reminder,
                                  final, ...) -> median days (null when no payment
                                  followed one)
      payments_after              the same notice types -> payments counted
      suspensions, reactivations, deletions   counts in the window
    Definitions: docs/reports.md.
    """
    until = datetime.now(UTC)
    reports = open_views(config_path)[1].reports
    start = since or until - _DEFAULT_WINDOW
    figures = reports.between(start, until)
    if as_json:
        show_json(figures.as_dict())
    else:
        _show(figures)
    if chart_path is not None:
        _chart(figures, reports.monthly(start, until), chart_path, as_json)


def _chart(figures: Report, monthly: MonthlyMoney, path: Path, as_json: bool) -> None:
    """Write the PNG and say where; on stderr under --json, so stdout stays JSON.

    Raises click.FileError when the file cannot be written.
    """
    from daemon.reports.chart import write_chart  # matplotlib only when asked

    try:
        write_chart(figures, monthly, path)
    except OSError as error:
        raise click.FileError(str(path), hint=error.strerror or str(error)) from None
    click.echo(f"chart written to {path}", err=as_json)


def _show(figures: Report) -> None:
    """Print the report as three small tables."""
    window = f"{figures.since:%Y-%m-%d %H:%M} to {figures.until:%Y-%m-%d %H:%M} UTC"
    show_table(
        "accounts per stage (now)", ["stage", "accounts"], list(figures.accounts_per_state.items())
    )
    currencies = sorted(set(figures.overdue_now) | set(figures.recovered))
    show_table(
        f"money ({window})",
        ["currency", "overdue now", "recovered"],
        [[c, figures.overdue_now.get(c, "0"), figures.recovered.get(c, "0")] for c in currencies],
    )
    show_table(f"lifecycle ({window})", ["figure", "value"], _lifecycle_rows(figures))


def _lifecycle_rows(figures: Report) -> list[list[Any]]:
    """The rows of the lifecycle table: recovery, days to pay, transitions."""
    rate = figures.recovery_rate
    return [
        ["fell overdue", figures.became_overdue],
        ["of them paid since", figures.paid_since],
        ["recovery rate", "-" if rate is None else f"{rate:.1%}"],
        ["payments", figures.payments],
        *[
            [f"median days to pay after {kind} ({figures.payments_after[kind]} payments)", days]
            for kind, days in figures.days_to_pay.items()
        ],
        ["suspensions", figures.suspensions],
        ["reactivations", figures.reactivations],
        ["deletions", figures.deletions],
    ]


COMMANDS = (report,)
