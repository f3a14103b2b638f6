"""Amounts and moments as a client reads them: in their currency and their time zone."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from decimal import ROUND_DOWN, Decimal
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.core import Locale
from babel.dates import format_datetime, get_date_format, get_datetime_format, get_time_format
from babel.numbers import format_currency, get_currency_precision

DEFAULT_LOCALE = "en"

WhenStyle = Literal["datetime", "date", "short"]

# The house style of the default locale, in CLDR pattern syntax (every other locale
# writes its own CLDR formats, see _patterns); the zone abbreviation is appended
# separately because CLDR's data only abbreviates a few (mostly US) zones.
_PATTERNS: dict[str, str] = {
    "datetime": "EEEE, d MMMM y, HH:mm",
    "date": "EEEE, d MMMM y",
    "short": "d MMMM y",
}


def format_money(amount: Decimal, currency: str, *, locale: str = DEFAULT_LOCALE) -> str:
    """Return `amount` formatted for `currency`, e.g. '€12.50', '$12.50', '¥1,234'.

    The number of decimals is the currency's own (JPY has none). Takes an ISO
    4217 code and a Babel locale name.
    """
    return format_currency(amount, currency.upper(), locale=babel_locale(locale))


@lru_cache(maxsize=256)
def babel_locale(name: str) -> Locale:
    """Return Babel's locale `name` ('de_AT'), parsed once: Babel parses a name given as a
    string on every call, and a notice formats a dozen amounts and dates. Raises what
    `Locale.parse` raises for an unknown name."""
    return Locale.parse(name)


def minor_unit(currency: str) -> Decimal:
    """Return the smallest amount `currency` is written in: 0.01 for EUR, 1 for JPY."""
    return Decimal(1).scaleb(-get_currency_precision(currency.upper()))


def split_instalments(total: Decimal, count: int, currency: str) -> tuple[Decimal, Decimal]:
    """Split `total` into `count` instalments in whole minor units of `currency`.

    Returns (regular amount, last amount): every instalment but the last is
    the regular one, rounded down; the last takes the remainder so the sum is
    exactly `total`. Raises ValueError when `count` is below 1.
    """
    if count < 1:
        raise ValueError(f"cannot split into {count} instalments")
    regular = (total / count).quantize(minor_unit(currency), rounding=ROUND_DOWN)
    return regular, total - regular * (count - 1)


def client_zone(tz_name: str) -> tzinfo:
    """Return the time zone named `tz_name`, or UTC when the name is unknown.

    An unknown name (a typo in the billing data) must not stop a notice; UTC
    is shown with its abbreviation, so the time stays unambiguous.
    """
    try:
        return ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def format_when(
    moment: datetime,
    tz_name: str,
    *,
    style: WhenStyle = "datetime",
    locale: str = DEFAULT_LOCALE,
) -> str:
    """Return `moment` as shown in the time zone `tz_name`.

    Styles: 'datetime' gives 'Tuesday, 1 December 2026, 14:30 CET'; 'date'
    gives 'Tuesday, 1 December 2026'; 'short' gives '1 December 2026' (the
    dates are the ones in the client's zone). That is the default locale's house
    style; any other locale writes its own CLDR formats: for 'de' 'Dienstag,
    1. Dezember 2026, 14:30 CET', for 'ja' '2026年12月1日火曜日 14:30 CET', for 'en_US'
    'Tuesday, December 1, 2026, 2:30 PM CET'. Raises ValueError for a naive
    datetime, whose instant is unknown, or an unknown style.
    """
    if moment.tzinfo is None:
        raise ValueError("cannot show a naive datetime in a client's time zone")
    if style not in _PATTERNS:
        raise ValueError(f"unknown date style {style!r}; expected one of {sorted(_PATTERNS)}")
    local = moment.astimezone(client_zone(tz_name))
    shown = format_datetime(local, _patterns(locale)[style], locale=babel_locale(locale))
    return f"{shown} {_abbreviation(local)}" if style == "datetime" else shown


def _patterns(locale: str) -> dict[str, str]:
    """Return the CLDR patterns of each style in `locale`: the house style for the default
    locale, the locale's own full date ('date'), long date ('short') and full date with
    its short time ('datetime'), joined as the locale joins them, for any other."""
    if locale == DEFAULT_LOCALE:
        return _PATTERNS
    date = get_date_format("full", locale=locale).pattern
    time = get_time_format("short", locale=locale).pattern
    joined = str(get_datetime_format("full", locale=locale))
    joined = joined.replace("{1}", date).replace("{0}", time)
    return {"datetime": joined, "date": date, "short": get_date_format("long", locale).pattern}


def _abbreviation(local: datetime) -> str:
    """Return the zone abbreviation of `local` ('CET', 'EST'), or 'UTC-03' for zones without one."""
    name = local.tzname() or "UTC"
    # tzdata spells zones without a common abbreviation as '-03' or '+0530'.
    return f"UTC{name}" if name[0] in "+-" else name
