"""The Jinja environment notices are rendered in: operator templates first, then shipped ones."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    pass_context,
    select_autoescape,
)
from jinja2.runtime import Context

from daemon.notices.money import DEFAULT_LOCALE, WhenStyle, format_money, format_when

# The shipped templates live in daemon/templates/notices (package data).
SHIPPED_PACKAGE = "daemon"
SHIPPED_PATH = "templates/notices"


def create_environment(
    templates_dir: Path | None = None, *, locale: str = DEFAULT_LOCALE
) -> Environment:
    """Return the environment notices are rendered in.

    Takes the operator's override directory (optional; a template found there
    replaces the shipped one of the same name) and a Babel locale for the
    `money` and `when` filters. HTML templates are autoescaped, text ones are
    not; a variable a template uses but is not given raises at render time.
    """
    env = Environment(
        loader=_loader(templates_dir),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["money"] = _money_filter(locale)
    env.filters["when"] = _when_filter(locale)
    return env


def _loader(templates_dir: Path | None) -> BaseLoader:
    """Return a loader that looks in `templates_dir` (when given) before the shipped set."""
    shipped = PackageLoader(SHIPPED_PACKAGE, SHIPPED_PATH)
    if templates_dir is None:
        return shipped
    return ChoiceLoader([FileSystemLoader(templates_dir), shipped])


def _money_filter(locale: str) -> Any:
    """Return the `money` filter: `{{ amount | money }}` or `{{ amount | money("USD") }}`.

    Without an argument the context's `currency` (the account's) is used.
    """

    @pass_context
    def money(context: Context, amount: Decimal, currency: str | None = None) -> str:
        return format_money(amount, currency or context["currency"], locale=locale)

    return money


def _when_filter(locale: str) -> Any:
    """Return the `when` filter: `{{ moment | when }}`, `{{ moment | when("short") }}`.

    The argument is a style of `format_when` ('datetime', 'date', 'short');
    the zone is the context's `timezone` (the client's) unless `tz` is given.
    """

    @pass_context
    def when(
        context: Context, moment: datetime, style: WhenStyle = "datetime", tz: str | None = None
    ) -> str:
        return format_when(moment, tz or context["timezone"], style=style, locale=locale)

    return when
