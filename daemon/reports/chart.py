"""The PNG chart of `lapse report`: accounts per stage, and overdue vs recovered."""

from __future__ import annotations

from pathlib import Path

from daemon.reports.figures import Report


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
    states = sorted(report.accounts_per_state)
    stages.barh(states, [report.accounts_per_state[s] for s in states], color="#3b6ea5")
    stages.set_title("Accounts per stage")
    stages.set_xlabel("accounts")
    stages.invert_yaxis()
    currencies = sorted(set(report.overdue_now) | set(report.recovered))
    positions = range(len(currencies))
    width = 0.4
    money.bar(
        [p - width / 2 for p in positions],
        [float(report.overdue_now.get(c, 0)) for c in currencies],
        width,
        label="overdue now",
        color="#c0504d",
    )
    money.bar(
        [p + width / 2 for p in positions],
        [float(report.recovered.get(c, 0)) for c in currencies],
        width,
        label=f"recovered since {report.since:%Y-%m-%d}",
        color="#4f9a5b",
    )
    money.set_xticks(list(positions), currencies)
    money.set_title("Overdue and recovered")
    money.legend()
    figure.suptitle(f"Lapse report {report.since:%Y-%m-%d} to {report.until:%Y-%m-%d}")
    figure.savefig(path, format="png", dpi=100)
    pyplot.close(figure)
    return path
