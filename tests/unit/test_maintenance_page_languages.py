"""The maintenance page upload writes the page in the brand's language and once per
language beside it, for the web server to pick by Accept-Language."""

from __future__ import annotations

import re
from pathlib import Path
from typing import cast

from daemon.config.schema import BrandConfig
from daemon.playbooks.pages import MaintenancePages
from daemon.playbooks.steps import STEP_TYPES
from daemon.playbooks.steps.specs import PutFileSpec
from tests.unit.test_shipped_playbooks import SHIPPED, RecordingTransport, _context, _service

PAGE = "/var/lib/lapse/maintenance/acct-1/lapse-maintenance.html"
NGINX = next(path for path in SHIPPED if path.stem == "nginx-linux")


def _written(pages: MaintenancePages) -> dict[str, str]:
    """Run the nginx playbook's upload step with `pages`; return path: page written."""
    playbook, context = _context(NGINX, _service(), "suspend")
    context.pages = pages
    (spec,) = [s for s in playbook.steps("suspend") if isinstance(s, PutFileSpec)]
    STEP_TYPES["put_file"].run(spec, context)
    transport = cast(RecordingTransport, context.transport)
    written = {}
    for script, content in transport.calls:
        match = re.search(r"^path=(\S+)$", script, re.MULTILINE)
        assert match is not None
        written[match.group(1)] = content.decode()
    return written


def _lang(page: str) -> str:
    match = re.search(r'<html lang="([^"]+)">', page)
    assert match is not None
    return match.group(1)


def test_the_page_is_written_in_the_brands_language_and_in_each_other_beside_it() -> None:
    written = _written(MaintenancePages(language="de"))

    assert _lang(written.pop(PAGE)) == "de"
    folder = PAGE.rsplit("/", 1)[0]
    assert {path: _lang(page) for path, page in written.items()} == {
        f"{folder}/lapse-maintenance.{tag}.html": tag
        for tag in ("de", "en", "es", "fr", "ja", "nl", "pt")
    }
    assert "vorübergehend nicht erreichbar" in written[f"{folder}/lapse-maintenance.de.html"]
    assert "一時的にご利用いただけません" in written[f"{folder}/lapse-maintenance.ja.html"]
    assert all("lapse-maintenance-page" in page for page in written.values())


def test_an_operator_language_gets_its_page(tmp_path: Path) -> None:
    catalog = tmp_path / "locale" / "pt_BR" / "LC_MESSAGES"
    catalog.mkdir(parents=True)
    (catalog / "lapse.po").write_text(
        'msgid ""\nmsgstr "Content-Type: text/plain; charset=utf-8\\n"\n\n'
        'msgid "This website cannot be reached at the moment. Please try again later."\n'
        'msgstr "Este site está fora do ar. Tente de novo mais tarde, por favor."\n',
        encoding="utf-8",
    )

    written = _written(MaintenancePages(templates_dir=tmp_path))

    page = written[PAGE.replace(".html", ".pt-br.html")]
    assert _lang(page) == "pt-BR"
    assert "Tente de novo mais tarde, por favor." in page  # the operator's wording
    assert "temporariamente indisponível" in page  # the rest from the shipped pt catalog
    assert _lang(written[PAGE]) == "en"  # the brand's default


def test_the_brand_config_refuses_a_language_cldr_does_not_know() -> None:
    assert BrandConfig(language="pt-BR").language == "pt_BR"
    try:
        BrandConfig(language="klingon")
    except ValueError as error:
        assert "unknown language 'klingon'" in str(error)
    else:
        raise AssertionError("an unknown brand language was accepted")
