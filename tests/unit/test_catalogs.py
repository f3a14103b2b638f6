"""The shipped gettext catalogs are complete: a missing translation is reported here, by a
test, never at run time (where the notice would quietly fall back to English).

- the template daemon/locale/lapse.pot holds exactly the messages the templates mark
  (`make catalogs-update` after a template's text changed);
- every catalog translates every message of it, none fuzzy or empty, each plural form
  filled, and with the placeholders of its message id (Babel's own checks);
- every compiled .mo holds what its .po says (`make catalogs` after a .po changed).

Each check is a function returning what is wrong, so the tests below also show it
finding a gap planted in a copy of a catalog.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from daemon.notices.catalogs import DOMAIN, SHIPPED_DIR

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = SHIPPED_DIR / f"{DOMAIN}.pot"
SHIPPED = ("de", "es", "fr", "ja", "nl", "pt")


def _po(language: str, root: Path = SHIPPED_DIR) -> Path:
    return root / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def _read(path: Path, language: str | None = None) -> Catalog:
    with path.open("rb") as handle:
        return read_po(handle, locale=language)


def extracted_ids(root: Path = ROOT) -> set[str | tuple[str, ...]]:
    """The message ids the templates under `root` mark, extracted as `make catalogs-update`
    does."""
    with (root / "babel.cfg").open() as config:
        method_map, options_map = parse_mapping_cfg(config)  # type: ignore[no-untyped-call]
    found = extract_from_dir(str(root), method_map, options_map)
    return {message for _file, _line, message, _comments, _context in found}


def catalog_gaps(catalog: Catalog, template: Catalog) -> list[str]:
    """Return what `catalog` lacks against `template`: each message missing, untranslated,
    fuzzy or with a plural form left empty, and each translation whose placeholders
    differ from its id's (Babel's checks); [] when it is complete."""
    gaps = []
    for wanted in template:
        if not wanted.id:
            continue
        message = catalog.get(wanted.id)
        if message is None:
            gaps.append(f"missing: {wanted.id!r}")
            continue
        forms = message.string if isinstance(message.string, tuple) else (message.string,)
        if message.fuzzy:
            gaps.append(f"fuzzy: {wanted.id!r}")
        if not all(forms) or len(forms) != (catalog.num_plurals if message.pluralizable else 1):
            gaps.append(f"untranslated: {wanted.id!r}")
    for message, errors in catalog.check():
        gaps += [f"{error}: {message.id!r}" for error in errors]
    return gaps


def stale_compiled(language: str, root: Path = SHIPPED_DIR) -> list[str]:
    """Return the messages the compiled .mo of `language` holds differently from its .po
    (or that it lacks), or ['no .mo'] when it was never compiled."""
    compiled = _po(language, root).with_suffix(".mo")
    if not compiled.is_file():
        return [f"no {compiled.name}: run `make catalogs`"]
    with compiled.open("rb") as handle:
        mo = {_key(m.id): _key(m.string) for m in read_mo(handle) if m.id}
    source = _read(_po(language, root), language)
    po = {_key(m.id): _key(m.string) for m in source if m.id and not m.fuzzy}
    return [f"stale: {key!r}" for key in po if mo.get(key) != po[key]]


def _key(value: object) -> object:
    """A message id or string as one comparable value (read_mo gives plurals as lists)."""
    return tuple(value) if isinstance(value, list | tuple) else value


def test_the_template_holds_exactly_the_messages_the_templates_mark() -> None:
    committed = {message.id for message in _read(TEMPLATE) if message.id}

    assert extracted_ids() == committed, "run `make catalogs-update`"


def test_a_message_added_to_a_template_but_not_to_the_catalogs_is_reported(
    tmp_path: Path,
) -> None:
    shutil.copy(ROOT / "babel.cfg", tmp_path)
    shutil.copytree(ROOT / "maintenance_pages", tmp_path / "maintenance_pages")
    shutil.copytree(ROOT / "daemon" / "templates", tmp_path / "daemon" / "templates")
    reminder = tmp_path / "daemon" / "templates" / "notices" / "reminder.txt"
    reminder.write_text(
        reminder.read_text() + "{% trans %}A sentence nobody translated.{% endtrans %}"
    )

    assert extracted_ids(tmp_path) - {m.id for m in _read(TEMPLATE)} == {
        "A sentence nobody translated."
    }


def test_lapse_ships_a_catalog_for_each_language_besides_english() -> None:
    assert sorted(p.parent.parent.name for p in SHIPPED_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.po")) == (
        sorted(SHIPPED)
    )


@pytest.mark.parametrize("language", SHIPPED)
def test_every_catalog_translates_every_message(language: str) -> None:
    assert catalog_gaps(_read(_po(language), language), _read(TEMPLATE)) == []


@pytest.mark.parametrize("language", SHIPPED)
def test_every_compiled_catalog_matches_its_source(language: str) -> None:
    assert stale_compiled(language) == []


def test_a_gap_planted_in_a_catalog_is_reported(tmp_path: Path) -> None:
    catalog = _read(_po("de"), "de")
    ids = [message.id for message in catalog if message.id and isinstance(message.id, str)]
    catalog.delete(ids[0])
    catalog[ids[1]].string = ""
    catalog[ids[2]].flags.add("fuzzy")
    plural = next(message for message in catalog if message.pluralizable)
    assert isinstance(plural.string, tuple)
    plural.string = (plural.string[0], "")
    placeholder = next(m for m in catalog if isinstance(m.id, str) and "%(account)s" in m.id)
    placeholder.string = "Konto %(konto)s"

    gaps = catalog_gaps(catalog, _read(TEMPLATE))

    assert f"missing: {ids[0]!r}" in gaps
    assert f"untranslated: {ids[1]!r}" in gaps
    assert f"fuzzy: {ids[2]!r}" in gaps
    assert f"untranslated: {plural.id!r}" in gaps
    assert any("konto" in gap and repr(placeholder.id) in gap for gap in gaps), gaps


def test_a_catalog_changed_after_it_was_compiled_is_reported(tmp_path: Path) -> None:
    shutil.copytree(SHIPPED_DIR / "de", tmp_path / "de")
    source = _po("de", tmp_path)
    assert stale_compiled("de", tmp_path) == []
    source.write_text(
        source.read_text().replace('msgstr "Betrag"', 'msgstr "Summe des Betrags"'),
        encoding="utf-8",
    )

    assert stale_compiled("de", tmp_path) == ["stale: 'Amount'"]
    source.with_suffix(".mo").unlink()
    assert stale_compiled("de", tmp_path) == ["no lapse.mo: run `make catalogs`"]
