"""Maintenance pages: jinja2 templates rendered into the self-contained page a suspended
site shows, in each language notices are written in. They get the site's name and the
host's support contact, never the client's identity or debt; every value is
HTML-escaped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from daemon.notices.catalogs import SOURCE_LANGUAGE, Catalogs, Language
from daemon.playbooks.library import shipped_dirs


class MaintenancePages:
    """Renders maintenance page templates, the operator's directory first, in the languages
    of the notice catalogs (daemon.notices.catalogs)."""

    def __init__(
        self,
        operator_dir: Path | None = None,
        *,
        templates_dir: Path | None = None,
        language: str = SOURCE_LANGUAGE,
    ) -> None:
        """Take the operator's `maintenance_pages_dir`, the `notices.templates_dir` whose
        catalogs add or override languages, and the brand's language: the page's when
        no other is asked for."""
        directories = ([operator_dir] if operator_dir else []) + shipped_dirs("maintenance_pages")
        self._loader = jinja2.FileSystemLoader([str(d) for d in directories])
        self._catalogs = Catalogs(templates_dir)
        self._default = language
        self._environments: dict[str, jinja2.Environment] = {}

    def languages(self) -> list[str]:
        """Return the languages a page is rendered in besides the default one, as lowercase
        BCP 47 tags ('de', 'pt-br'), shorter tags first."""
        tags = {Language(name, name).tag.lower() for name in self._catalogs.languages()}
        return sorted(tags, key=lambda tag: (len(tag), tag))

    def render(
        self,
        name: str,
        site: str,
        support_email: str,
        company: str,
        language: str | None = None,
    ) -> str:
        """Render page `name` for `site` in `language` (a tag from `languages()`; None: the
        brand's). Raises jinja2.TemplateNotFound or TemplateError."""
        chosen = self._catalogs.choose(
            None if language is None else language.replace("-", "_"), self._default
        )
        context: dict[str, Any] = {
            "site": site,
            "support_email": support_email,
            "company": company,
            "language": chosen.tag,
        }
        return self._environment(chosen.catalog).get_template(name).render(context)

    def _environment(self, catalog: str) -> jinja2.Environment:
        """Return the environment whose {% trans %} blocks use `catalog` (made once)."""
        if catalog not in self._environments:
            env = jinja2.Environment(
                loader=self._loader,
                autoescape=True,
                undefined=jinja2.StrictUndefined,
                extensions=["jinja2.ext.i18n"],
            )
            env.policies["ext.i18n.trimmed"] = True
            translations = self._catalogs.translations(catalog)
            env.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]  # added by the i18n extension
            self._environments[catalog] = env
        return self._environments[catalog]
