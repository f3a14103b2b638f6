"""The translations notices and maintenance pages are written in: Babel's gettext catalogs.

English is the source language: the templates are written in it, so it needs no
catalog. Every other language is one catalog of the `lapse` domain: the shipped ones
in daemon/locale/<language>/LC_MESSAGES/lapse.mo (compiled from the .po files next to
them by `make catalogs`), and the operator's in `<templates_dir>/locale/<language>/
LC_MESSAGES/lapse.po` (or `.mo`), whose messages replace the shipped ones of the same
id and may add a language Lapse does not ship. A message a catalog lacks is written in
English; tests/unit/test_catalogs.py fails when a shipped catalog lacks one.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import structlog
from babel.core import Locale, UnknownLocaleError, negotiate_locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import PoFileError, read_po
from babel.support import NullTranslations, Translations

DOMAIN = "lapse"
SOURCE_LANGUAGE = "en"
# The shipped catalogs (package data).
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "locale"
# Where an operator's catalogs are kept under `notices.templates_dir`.
OPERATOR_SUBDIR = "locale"

log = structlog.get_logger("lapse.notices")


@dataclass(frozen=True, slots=True)
class Language:
    """The language a notice or page is written in, and the locale it formats in.

    `catalog` names the catalog used ('de'); `locale` is the CLDR locale amounts and
    dates follow ('de_AT' for a client in Austria, whose text is the German catalog's).
    """

    catalog: str
    locale: str

    @property
    def tag(self) -> str:
        """The catalog's language as a BCP 47 tag, for `lang=` and Content-Language ('pt-BR')."""
        return self.catalog.replace("_", "-")


class Catalogs:
    """The catalogs one configuration has: the shipped ones and the operator's."""

    def __init__(self, templates_dir: Path | None = None) -> None:
        """Take the operator's `notices.templates_dir` (optional), whose `locale/` folder
        and per-language template folders add or override languages."""
        self.templates_dir = templates_dir

    def languages(self) -> frozenset[str]:
        """Return every language a notice can be written in: English, the shipped
        catalogs, the operator's catalogs and the operator's per-language template
        folders (`<templates_dir>/<language>/`)."""
        found = {SOURCE_LANGUAGE, *_shipped_languages()}
        if self.templates_dir is not None:
            found |= _catalog_languages(self.templates_dir / OPERATOR_SUBDIR)
            if self.templates_dir.is_dir():
                found |= {p.name for p in self.templates_dir.iterdir() if _is_language_dir(p)}
        return frozenset(found)

    def translations(self, language: str) -> NullTranslations:
        """Return the messages of `language` (the shipped catalog with the operator's
        merged over it); English, or a language without a catalog, gives the source
        text unchanged. Raises nothing: an operator's catalog that cannot be read is
        logged and left out, so the notice still goes out in the shipped text."""
        shipped = _shipped(language)
        operator = self._operator(language)
        if operator is None:
            return shipped
        if isinstance(shipped, Translations):
            merged = _copy(shipped)
            merged.merge(operator)
            return merged
        return operator

    def choose(self, wanted: str | None, default: str) -> Language:
        """Return the language to write to a client whose billing states `wanted` (None:
        not stated) when the brand's language is `default`.

        The client's language is used when a catalog of it, or of its language without
        the region, exists ('de_AT' is written with 'de'); otherwise the brand's is,
        and the fallback is logged. Amounts and dates follow the language used.
        """
        available = sorted(self.languages())
        if wanted is not None:
            catalog = _negotiate(wanted, available)
            if catalog is not None:
                return Language(catalog, wanted)
            log.info(
                "no catalog for the client's language; the brand's language is used",
                language=wanted,
                brand_language=default,
            )
        return Language(_negotiate(default, available) or SOURCE_LANGUAGE, default)

    def _operator(self, language: str) -> Translations | None:
        """Return the operator's catalog of `language`, or None when there is none."""
        if self.templates_dir is None:
            return None
        folder = self.templates_dir / OPERATOR_SUBDIR / language / "LC_MESSAGES"
        compiled, source = folder / f"{DOMAIN}.mo", folder / f"{DOMAIN}.po"
        try:
            if compiled.is_file():
                with compiled.open("rb") as handle:
                    return Translations(handle, domain=DOMAIN)
            if source.is_file():
                return _from_po(source, language)
        except (OSError, ValueError, PoFileError) as error:
            log.error("operator catalog unreadable; left out", path=str(folder), error=str(error))
        return None


def _negotiate(wanted: str, available: list[str]) -> str | None:
    """Return the language of `available` that `wanted` ('de_AT', 'pt_br') is written in,
    spelt as `available` spells it (Babel answers in the spelling asked for), or None."""
    found = negotiate_locale([wanted], available, sep="_")
    if found is None:
        return None
    spelt = {name.lower(): name for name in available}
    return spelt.get(found.lower(), found)


def is_locale(name: str) -> bool:
    """Return whether `name` is a CLDR locale identifier Babel knows ('de', 'pt_BR')."""
    try:
        Locale.parse(name)
    except (UnknownLocaleError, ValueError):
        return False
    return True


@lru_cache(maxsize=64)
def _shipped(language: str) -> NullTranslations:
    """Return the shipped catalog of `language` (cached: the .mo files never change while
    Lapse runs), or the empty one when Lapse ships none."""
    return Translations.load(str(SHIPPED_DIR), [language], DOMAIN)


def _copy(translations: Translations) -> Translations:
    """Return a new catalog holding `translations`' messages, so a merge leaves the cached
    shipped one untouched."""
    copied = Translations(domain=DOMAIN)
    copied.merge(translations)
    return copied


def _from_po(path: Path, language: str) -> Translations:
    """Return the catalog of a .po file, compiled in memory; fuzzy messages are left out,
    as `pybabel compile` leaves them out."""
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=language, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


@lru_cache(maxsize=1)
def _shipped_languages() -> frozenset[str]:
    """Return the languages of the shipped catalogs: files of the package, the same for
    the process's life (read once, not for every notice)."""
    return frozenset(_catalog_languages(SHIPPED_DIR))


def _catalog_languages(root: Path) -> set[str]:
    """Return the languages that have a catalog (compiled or not) under `root`."""
    if not root.is_dir():
        return set()
    return {
        folder.name
        for folder in root.iterdir()
        if any((folder / "LC_MESSAGES" / f"{DOMAIN}{ext}").is_file() for ext in (".mo", ".po"))
        and is_locale(folder.name)
    }


def _is_language_dir(path: Path) -> bool:
    """Return whether `path` is an operator's per-language template folder ('de/')."""
    return path.is_dir() and path.name != OPERATOR_SUBDIR and is_locale(path.name)
