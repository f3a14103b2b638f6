"""Checks for single billing values, shared by the nested and the flat parsers.

Each check takes a raw value (a string from a file, a number or date from a
database driver or JSON) and the field's name, and returns the clean value or
raises FieldError saying what was expected and what was got. They run once per
value over hundreds of thousands of rows, so they are plain Python with caches
instead of a validation framework.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from babel.core import Locale, UnknownLocaleError

from daemon.domain.errors import LapseError
from daemon.domain.snapshot import Database

DB_ENGINES = ("mariadb", "postgresql")

# Account ids name directories and keys (backups, maintenance pages): never '.' or '..',
# no leading '.' or '-' (a hidden name, or one a command reads as an option).
_ACCOUNT_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
# Host names must match a [hosts.<name>] table of the config, which has this shape.
_HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
# POSIX-portable user names; no leading '-' so a name never reads as an option.
_SYSTEM_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}")
_DOCROOT_CHARS = re.compile(r"[A-Za-z0-9/._+@~,=:-]+")
_DB_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_$-]{0,63}")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"(?:\*\.)?{_LABEL}(?:\.{_LABEL})*")
_EMAIL = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A language tag ('de', 'de-DE', 'pt_BR', 'zh-Hant-TW'): subtags of letters and digits.
_LANGUAGE = re.compile(r"[A-Za-z]{2,8}(?:[-_][A-Za-z0-9]{1,8})*")
# The longest text Lapse keeps (docs/billing.md, "Limits"): enough for any real value,
# small enough that a runaway or hostile value cannot bloat notices, logs or memory.
TEXT_LIMIT = 1000  # line item descriptions and other free text
NAME_LIMIT = 200  # a contact's name, printed in every notice
PLAN_LIMIT = 63  # a policy table's name; the state database keeps 63
INVOICE_ID_LIMIT = 100
EMAIL_LIMIT = 254  # RFC 5321's longest forward path, less the angle brackets
LANGUAGE_LIMIT = 35  # the longest language tag RFC 5646 (4.4.1) asks implementations to keep
_TRUE = frozenset({"true", "yes", "1"})
_log = structlog.get_logger("lapse.billing")
_FALSE = frozenset({"false", "no", "0", ""})


class FieldError(LapseError):
    """One value could not be read; `field` names it, `message` says what was wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def shown(value: object) -> str:
    """Return `value` as an operator should see it in an error: repr, cut at 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def is_blank(value: object) -> bool:
    """Return whether `value` is absent: None, or a string of only whitespace."""
    return value is None or (isinstance(value, str) and not value.strip())


def text(value: object, field: str, limit: int = TEXT_LIMIT) -> str:
    """Return a required one-line text value, stripped.

    Takes a string (or an integer, as databases return numeric ids) and the most
    characters it may have. Raises FieldError when it is missing, empty, longer
    than `limit` or holds control characters (a name with a line break could forge
    mail headers).
    """
    if type(value) is str:
        stripped = value.strip()
        if stripped and len(stripped) <= limit and stripped.isprintable():
            return stripped  # the common case, checked with three C calls
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise FieldError(field, f"expected text, got {shown(value)}")
    stripped = value.strip()
    if not stripped:
        raise FieldError(field, "expected a value, got nothing")
    if _CONTROL.search(stripped):
        raise FieldError(field, f"expected one line of text, got {shown(value)}")
    if len(stripped) > limit:
        raise FieldError(
            field, f"expected at most {limit} characters, got {len(stripped)}: {shown(stripped)}"
        )
    return stripped


def _matching(pattern: re.Pattern[str], value: object, field: str, expected: str) -> str:
    """Return the stripped text `value` when it fully matches `pattern`; raises FieldError."""
    if type(value) is str and pattern.fullmatch(value) is not None:
        return value  # no pattern here admits spaces, so a match needs no stripping
    clean = text(value, field)
    if pattern.fullmatch(clean) is None:
        raise FieldError(field, f"expected {expected}, got {shown(clean)}")
    return clean


def account_id(value: object, field: str = "account_id") -> str:
    """Return an account id: 1 to 64 letters, digits, '.', '_' or '-', the first a letter,
    digit or '_' (so never '.', '..' or an option). Raises FieldError."""
    return _matching(
        _ACCOUNT_ID,
        value,
        field,
        "1 to 64 letters, digits, '.', '_' or '-', not starting with '.' or '-'",
    )


def currency(value: object, field: str) -> str:
    """Return a three-letter uppercase ISO 4217 code such as 'EUR'. Raises FieldError."""
    clean = value.strip() if isinstance(value, str) else value
    if not (
        isinstance(clean, str)
        and len(clean) == 3
        and clean.isascii()
        and clean.isalpha()
        and clean.isupper()
    ):
        raise FieldError(field, f"expected a 3-letter currency code like 'EUR', got {shown(value)}")
    return clean


def money(value: object, field: str, *, negative: bool = False) -> Decimal:
    """Return an amount of money as a Decimal.

    Takes a numeric string, an int, a Decimal or a float (read through its
    shortest repr, so 9.99 stays 9.99). Raises FieldError for anything else,
    NaN, infinities, and negative amounts unless `negative` is true.
    """
    kind = type(value)
    amount: Decimal | None
    if kind is str:
        amount = _amount_from_text(value)  # type: ignore[arg-type,unused-ignore]  # kind is str
    elif kind is Decimal or kind is int:
        amount = Decimal(value)  # type: ignore[arg-type]  # kind is Decimal or int
    elif kind is float:
        amount = Decimal(repr(value))
    else:
        amount = None
    if amount is None:
        raise FieldError(field, f"expected an amount like '12.50', got {shown(value)}")
    if not amount.is_finite():
        raise FieldError(field, f"expected a finite amount, got {shown(value)}")
    if amount < 0 and not negative:
        raise FieldError(field, f"expected an amount of 0 or more, got {shown(value)}")
    return amount


@lru_cache(maxsize=65536)
def _amount_from_text(value: str) -> Decimal | None:
    """Return the Decimal a numeric string spells, or None (cached: prices repeat a lot)."""
    try:
        return Decimal(value)
    except InvalidOperation:
        return None


def moment(value: object, field: str) -> datetime:
    """Return a point in time as an aware UTC datetime.

    Takes ISO 8601 text carrying 'Z' or an offset ('2026-11-01T09:30:00+01:00'),
    a date alone ('2026-11-01', meaning 00:00 UTC), or the datetime/date a
    database driver returns. Raises FieldError for anything else, including a
    date-time without an offset: guessing its zone could shift a deadline.
    """
    if isinstance(value, str):
        try:
            return _moment_from_text(value.strip())
        except ValueError as error:
            raise FieldError(field, f"{error}, got {shown(value)}") from None
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise FieldError(field, f"expected a date-time with a UTC offset, got {shown(value)}")
        return value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    raise FieldError(field, f"expected an ISO 8601 date or date-time, got {shown(value)}")


@lru_cache(maxsize=65536)
def _moment_from_text(value: str) -> datetime:
    """Parse ISO 8601 text (see `moment`); raises ValueError with what was expected."""
    try:
        if "T" not in value and " " not in value:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("expected an ISO 8601 date or date-time") from None
    if parsed.tzinfo is None:
        raise ValueError("expected a date-time with 'Z' or a UTC offset such as '+01:00'")
    return parsed.astimezone(UTC)


def optional_moment(value: object, field: str) -> datetime | None:
    """Return `moment(value)`, or None when the value is blank. Raises FieldError."""
    return None if is_blank(value) else moment(value, field)


def timezone(value: object, field: str) -> str:
    """Return an IANA time zone name such as 'Europe/Berlin'; blank means 'UTC'.

    Raises FieldError when the name is not in the system's time zone database.
    """
    if type(value) is str and _known_zone(value):
        return value
    if is_blank(value):
        return "UTC"
    name = text(value, field)
    if not _known_zone(name):
        raise FieldError(
            field, f"expected an IANA time zone like 'Europe/Berlin', got {shown(name)}"
        )
    return name


@lru_cache(maxsize=1024)
def _known_zone(name: str) -> bool:
    """Return whether zoneinfo can load `name` (cached: thousands of rows share a few zones)."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def email(value: object, field: str) -> str:
    """Return an e-mail address: one '@', something on each side, no spaces. Raises FieldError."""
    clean = value if type(value) is str else text(value, field)
    if len(clean) <= EMAIL_LIMIT and _EMAIL.fullmatch(clean) is not None:
        return clean
    clean = text(value, field, EMAIL_LIMIT)
    if _EMAIL.fullmatch(clean) is None:
        raise FieldError(
            field, f"expected an e-mail address like 'ana@example.com', got {shown(clean)}"
        )
    return clean


def language(value: object, field: str) -> str | None:
    """Return the client's language as a CLDR locale identifier ('de', 'de_DE', 'pt_BR'),
    or None when it is blank or names no language CLDR knows (the brand's language then
    applies; an unknown one is logged once per process, never an error).

    Takes a BCP 47 tag ('de-DE') or a POSIX-style one ('de_DE'), in any case. Raises
    FieldError for a value that is no language tag at all: not text, longer than
    LANGUAGE_LIMIT, or with characters a tag never has (spaces, quotes, control
    characters), as for any other malformed field.
    """
    if is_blank(value):
        return None
    clean = text(value, field, LANGUAGE_LIMIT)
    if _LANGUAGE.fullmatch(clean) is None:
        raise FieldError(field, f"expected a language tag like 'de' or 'pt-BR', got {shown(clean)}")
    return known_language(clean)


def usable_language(value: object) -> str | None:
    """Return `language(value)`, or None where that raises: for a source that picks the
    first usable one of several languages."""
    try:
        return language(value, "language")
    except FieldError:
        return None


@lru_cache(maxsize=1024)
def known_language(tag: str) -> str | None:
    """Return the CLDR locale identifier of the language tag `tag` ('de-de' gives
    'de_DE'), or None, logged, when CLDR has no such locale (cached: thousands of rows
    share a few languages, and an unknown one is logged once)."""
    language_part, *rest = tag.replace("-", "_").split("_")
    parts = [language_part.lower()]
    for part in rest:
        # BCP 47's case conventions, which Babel's parser expects: Hant, DE, 419.
        parts.append(part.title() if len(part) == 4 else part.upper())
    try:
        return str(Locale.parse("_".join(parts)))
    except (UnknownLocaleError, ValueError):
        _log.info("client language unknown; the brand's language applies", language=tag)
        return None


def flag(value: object, field: str) -> bool:
    """Return a yes/no value from a flat row: a bool, 0/1, or true/false/yes/no/1/0 text.

    Blank means false. Raises FieldError for anything else.
    """
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, int) and value in (0, 1):
        return value == 1
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise FieldError(field, f"expected true or false, got {shown(value)}")


def host(value: object, field: str) -> str:
    """Return a host name as the config's [hosts] table names it. Raises FieldError."""
    return _matching(_HOST, value, field, "a host name of letters, digits, '.', '_' or '-'")


def system_user(value: object, field: str) -> str:
    """Return a system user name: up to 32 letters, digits, '.', '_', '-'. Raises FieldError."""
    return _matching(
        _SYSTEM_USER, value, field, "a user name of up to 32 letters, digits, '.', '_' or '-'"
    )


def docroot(value: object, field: str) -> str:
    """Return an absolute document root without '..' parts. Raises FieldError.

    Deletion acts on this path, so anything that could point elsewhere is refused.
    """
    path = text(value, field)
    # The path goes into shell commands and web-server configs: characters that mean
    # something to either (quotes, '$', ';', braces, spaces, ...) are refused here.
    if _DOCROOT_CHARS.fullmatch(path) is None:
        raise FieldError(
            field,
            f"expected a path of letters, digits and / . _ - + @ ~ , = : only, got {shown(path)}",
        )
    # In an absolute path every '..' part follows a '/'.
    if not path.startswith("/") or "/../" in path or path.endswith("/.."):
        raise FieldError(field, f"expected an absolute path without '..', got {shown(path)}")
    # The file system root ('/', '//', '/./') is never one client's site.
    if not path.replace("/", "").replace(".", ""):
        raise FieldError(field, f"expected a directory below '/', got {shown(path)}")
    return path


def domain(value: object, field: str) -> str:
    """Return a domain name such as 'example.com' or '*.example.com'. Raises FieldError."""
    if type(value) is str and len(value) <= 253 and _DOMAIN.fullmatch(value) is not None:
        return value  # the common case: the pattern admits no spaces, so nothing to strip
    clean = text(value, field)
    if len(clean) > 253 or _DOMAIN.fullmatch(clean) is None:
        raise FieldError(field, f"expected a domain name like 'example.com', got {shown(clean)}")
    return clean


def database(engine: object, name: object, user: object, field: str) -> Database:
    """Return a Database from its engine ('mariadb' or 'postgresql'), name and optional user.

    Raises FieldError naming `field` when a part is missing or malformed.
    """
    # The common case ('mariadb' exactly) skips text()'s checks; anything else goes through them.
    engine_name = engine if engine in DB_ENGINES and type(engine) is str else text(engine, field)
    if engine_name not in DB_ENGINES:
        raise FieldError(field, f"expected engine 'mariadb' or 'postgresql', got {shown(engine)}")
    engine_name = DB_ENGINES[DB_ENGINES.index(engine_name)]  # one shared string per engine
    expected = "a database name of letters, digits, '_', '$' or '-'"
    db_name = _matching(_DB_NAME, name, field, expected)
    if is_blank(user):
        return Database(engine=engine_name, name=db_name)
    db_user = _matching(_DB_NAME, user, field, "a database user of letters, digits, '_' or '-'")
    return Database(engine=engine_name, name=db_name, user=db_user)


def split_list(value: object, field: str) -> list[str]:
    """Return the items of a space- or comma-separated text value; blank gives [].

    Raises FieldError when the value is not text.
    """
    if value is None:
        return []
    if not isinstance(value, str):
        raise FieldError(field, f"expected a space-separated list, got {shown(value)}")
    return value.replace(",", " ").split()
