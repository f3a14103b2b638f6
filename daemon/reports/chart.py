"""The PNG chart of `lapse report`: accounts per stage, and overdue against recovered."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from daemon.reports.figures import Report

if TYPE_CHECKING:
    from matplotlib.axes import Axes

_OVERDUE_COLOUR = "#c0504d"
_RECOVERED_COLOUR = "#4f9a5b"
_STAGE_COLOUR = "#3b6ea5"


def write_chart(report: Report, path: Path) -> Path:
    """Draw the report's two panels into a PNG at `path`; return the path.

    Raises OSError when the file cannot be written.
    """
    # Imported here: matplotlib is heavy and only this command needs it. Agg draws
    # without a display, as on a server.
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, (stages, money) = pyplot.subplots(1, 2, figsize=(11, 4.5), layout="constrained")
    try:
        _draw_stages(stages, report)
        _draw_money(money, report)
        figure.suptitle(f"Lapse report {report.since:%Y-%m-%d} to {report.until:%Y-%m-%d}")
        figure.savefig(path, format="png", dpi=100)
    finally:
        pyplot.close(figure)
    return path


def _draw_stages(axes: Axes, report: Report) -> None:
    """Horizontal bars: accounts per state, in lifecycle order from the top."""
    states = list(report.accounts_per_state)
    from matplotlib.ticker import MaxNLocator

    axes.barh(states, [report.accounts_per_state[s] for s in states], color=_STAGE_COLOUR)
    axes.set_title("Accounts per stage (now)")
    axes.set_xlabel("accounts")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.invert_yaxis()


def _draw_money(axes: Axes, report: Report) -> None:
    """Paired bars per currency: overdue now against recovered in the window."""
    currencies = sorted(set(report.overdue_now) | set(report.recovered))
    positions = list(range(len(currencies)))
    width = 0.4
    # Floats only for drawing: bar heights are pixels, the figures stay Decimal.
    overdue = [float(report.overdue_now.get(c, 0)) for c in currencies]
    recovered = [float(report.recovered.get(c, 0)) for c in currencies]
    left = axes.bar([p - width / 2 for p in positions], overdue, width, color=_OVERDUE_COLOUR)
    right = axes.bar([p + width / 2 for p in positions], recovered, width, color=_RECOVERED_COLOUR)
    # The labels print the exact Decimal amounts, not the rounded bar heights.
    axes.bar_label(left, [str(report.overdue_now.get(c, "")) for c in currencies])
    axes.bar_label(right, [str(report.recovered.get(c, "")) for c in currencies])
    axes.set_xticks(positions, currencies)
    axes.margins(y=0.2)  # room for the legend and the labels above the bars
    axes.set_title("Overdue and recovered")
    axes.legend(
        [left, right], ["overdue now", f"recovered since {report.since:%Y-%m-%d}"], loc="upper left"
    )
