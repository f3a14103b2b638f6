"""The PNG chart of `lapse report`: accounts per stage, then one panel per currency with
what payments recovered each month and what is overdue now.

Each currency gets its own panel and axis: yen and euros on one axis would make the
euros invisible.
"""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from daemon.reports.figures import MonthlyMoney, Report

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.container import BarContainer
    from matplotlib.figure import Figure

_OVERDUE_COLOUR = "#c0504d"
_RECOVERED_COLOUR = "#4f9a5b"
_STAGE_COLOUR = "#3b6ea5"
_COLUMNS = 3


def write_chart(report: Report, monthly: MonthlyMoney, path: Path) -> Path:
    """Draw the report's panels (see `draw_chart`) into a PNG at `path`; return the path.

    Raises OSError when the file cannot be written.
    """
    from matplotlib import pyplot

    figure = draw_chart(report, monthly)
    try:
        figure.savefig(path, format="png", dpi=100)
    finally:
        pyplot.close(figure)
    return path


def draw_chart(report: Report, monthly: MonthlyMoney) -> Figure:
    """Return the figure: accounts per stage, then one panel per currency (overdue now or
    recovered in the window), three panels to a row. The caller closes it."""
    # Imported here: matplotlib is heavy and only this command needs it. Agg draws
    # without a display, as on a server.
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    currencies = sorted(set(report.overdue_now) | set(monthly.recovered))
    panels = 1 + len(currencies)
    columns = min(panels, _COLUMNS)
    rows = math.ceil(panels / columns)
    figure, grid = pyplot.subplots(
        rows, columns, figsize=(5.5 * columns, 4.5 * rows), layout="constrained", squeeze=False
    )
    axes = [panel for row in grid for panel in row]
    _draw_stages(axes[0], report)
    for panel, currency in zip(axes[1:], currencies, strict=False):
        _draw_currency(panel, currency, report, monthly)
    for unused in axes[panels:]:
        unused.set_visible(False)
    figure.suptitle(f"Lapse report {report.since:%Y-%m-%d} to {report.until:%Y-%m-%d}")
    return figure


def _draw_stages(axes: Axes, report: Report) -> None:
    """Horizontal bars: accounts per state, in lifecycle order from the top."""
    states = list(report.accounts_per_state)
    from matplotlib.ticker import MaxNLocator

    axes.barh(states, [report.accounts_per_state[s] for s in states], color=_STAGE_COLOUR)
    axes.set_title("Accounts per stage (now)")
    axes.set_xlabel("accounts")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.invert_yaxis()


def _draw_currency(axes: Axes, currency: str, report: Report, monthly: MonthlyMoney) -> None:
    """One currency: bars of what payments recovered per month, and a line at what is
    overdue now."""
    months = list(monthly.months)
    amounts = monthly.recovered.get(currency, [])
    recovered = amounts or [Decimal(0)] * len(months)
    # Floats only for drawing: bar heights are pixels, the figures stay Decimal.
    bars = axes.bar(months, [float(a) for a in recovered], color=_RECOVERED_COLOUR)
    # The labels print the exact Decimal amounts, not the rounded bar heights.
    axes.bar_label(bars, [str(a) if a else "" for a in recovered])
    overdue = report.overdue_now.get(currency)
    handles: list[Artist | BarContainer] = [bars]
    labels = ["recovered per month"]
    if overdue is not None:
        line = axes.axhline(float(overdue), color=_OVERDUE_COLOUR, linestyle="--")
        handles.append(line)
        labels.append(f"overdue now: {overdue}")
    axes.set_title(currency)
    axes.set_ylabel(currency)
    # Room above the tallest bar or the overdue line for the labels and the legend.
    tallest = max([float(a) for a in recovered] + [float(overdue or 0)])
    axes.set_ylim(0, tallest * 1.45 or 1)
    axes.tick_params(axis="x", labelrotation=45)
    axes.legend(handles, labels, loc="upper left")
