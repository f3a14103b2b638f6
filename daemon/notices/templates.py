"""The Jinja environments notices are rendered in: operator templates first, then shipped
ones, with the catalog and the number and date formats of one language."""

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

from daemon.notices.catalogs import SOURCE_LANGUAGE, Catalogs, Language
from daemon.notices.money import DEFAULT_LOCALE, WhenStyle, format_money, format_when

# The shipped templates live in daemon/templates/notices (package data).
SHIPPED_PACKAGE = "daemon"
SHIPPED_PATH = "templates/notices"
# What create_environment() keeps on the environment (jinja2's Environment.extend).
_CATALOGS = "lapse_catalogs"
_BY_LANGUAGE = "lapse_by_language"


def create_environment(
    templates_dir: Path | None = None,
    *,
    locale: str = DEFAULT_LOCALE,
    language: str = SOURCE_LANGUAGE,
) -> Environment:
    """Return the environment notices are rendered in.

    Takes the operator's override directory (optional; a template found there
    replaces the shipped one of the same name, and one in its `<language>/` folder
    replaces both for that language), a Babel locale for the `money` and `when`
    filters, and the language whose catalog `{% trans %}` uses (English, the source,
    by default). HTML templates are autoescaped, text ones are not; a variable a
    template uses but is not given raises at render time. `environment_for` returns
    the environment of another language made from the same settings.
    """
    env = Environment(
        loader=_loader(templates_dir, language),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        extensions=["jinja2.ext.i18n"],
    )
    # A {% trans %} block's whitespace is collapsed, so its message id is one line
    # however the template wraps it (babel.cfg extracts with the same setting).
    env.policies["ext.i18n.trimmed"] = True
    catalogs = Catalogs(templates_dir)
    env.install_gettext_translations(catalogs.translations(language), newstyle=True)  # type: ignore[attr-defined]  # added by the i18n extension
    env.filters["money"] = _money_filter(locale)
    env.filters["when"] = _when_filter(locale)
    env.extend(**{_CATALOGS: catalogs, _BY_LANGUAGE: {}})
    return env


def catalogs_of(env: Environment) -> Catalogs:
    """Return the catalogs `env` was made with (by create_environment)."""
    catalogs: Catalogs = getattr(env, _CATALOGS)
    return catalogs


def environment_for(env: Environment, language: Language) -> Environment:
    """Return the environment that writes `language` with the templates `env` was made
    with (by create_environment); made once per language and kept on `env`."""
    made: dict[Language, Environment] = getattr(env, _BY_LANGUAGE)
    if language not in made:
        made[language] = create_environment(
            catalogs_of(env).templates_dir, locale=language.locale, language=language.catalog
        )
    return made[language]


def _loader(templates_dir: Path | None, language: str) -> BaseLoader:
    """Return a loader that looks in `templates_dir/<language>` and `templates_dir` (when
    given) before the shipped set."""
    shipped = PackageLoader(SHIPPED_PACKAGE, SHIPPED_PATH)
    if templates_dir is None:
        return shipped
    folders = [templates_dir / language, templates_dir]
    return ChoiceLoader([FileSystemLoader([str(f) for f in folders if f.is_dir()]), shipped])


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
