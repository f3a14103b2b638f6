"""The chart of `lapse report --chart`: one panel per currency, each with its own axis and
the trend per month (docs/reports.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from matplotlib import pyplot

from daemon.domain.states import State
from daemon.reports.chart import draw_chart, write_chart
from daemon.reports.figures import MonthlyMoney, Report, months_between

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _report(overdue: dict[str, str]) -> Report:
    return Report(
        since=datetime(2026, 1, 10, tzinfo=UTC),
        until=datetime(2026, 3, 5, tzinfo=UTC),
        accounts_per_state={state.value: 1 for state in State},
        overdue_now={currency: Decimal(amount) for currency, amount in overdue.items()},
        recovered={"EUR": Decimal("130.00")},
        payments=2,
        became_overdue=3,
        paid_since=2,
        days_to_pay={},
        payments_after={},
        suspensions=0,
        reactivations=0,
        deletions=0,
    )


MONTHLY = MonthlyMoney(
    ("2026-01", "2026-02", "2026-03"),
    {"EUR": [Decimal("100.00"), Decimal("0.00"), Decimal("30.00")]},
)


def test_months_between_lists_every_calendar_month_touched() -> None:
    assert months_between(datetime(2025, 11, 30, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)) == (
        "2025-11",
        "2025-12",
        "2026-01",
        "2026-02",
    )


def test_each_currency_gets_its_own_panel_with_a_bar_per_month() -> None:
    figure = draw_chart(_report({"EUR": "160.00", "JPY": "3850", "USD": "117.50"}), MONTHLY)
    try:
        visible = [axes for axes in figure.axes if axes.get_visible()]
        assert [axes.get_title() for axes in visible] == [
            "Accounts per stage (now)",
            "EUR",
            "JPY",
            "USD",
        ]
        eur, jpy = visible[1], visible[2]
        assert [label.get_text() for label in eur.get_xticklabels()] == list(MONTHLY.months)
        assert [bar.get_height() for bar in eur.containers[0]] == [100.0, 0.0, 30.0]
        # JPY has its own axis: its 3850 does not flatten the euros.
        assert eur.get_ylim()[1] < 1000 < jpy.get_ylim()[1]
        legend = jpy.get_legend()
        assert legend is not None
        assert [t.get_text() for t in legend.get_texts()] == [
            "recovered per month",
            "overdue now: 3850",
        ]
    finally:
        pyplot.close(figure)


def test_the_chart_is_written_as_a_png(tmp_path: Path) -> None:
    path = write_chart(_report({}), MonthlyMoney(("2026-01",), {}), tmp_path / "chart.png")
    assert path.read_bytes().startswith(PNG_SIGNATURE)
