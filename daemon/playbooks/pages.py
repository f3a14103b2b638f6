"""Maintenance pages: jinja2 templates rendered into the self-contained page a suspended
site shows. They get the site's name and the host's support contact, never the
client's identity or debt; every value is HTML-escaped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from daemon.playbooks.library import shipped_dirs


class MaintenancePages:
    """Renders maintenance page templates, the operator's directory first."""

    def __init__(self, operator_dir: Path | None = None) -> None:
        directories = ([operator_dir] if operator_dir else []) + shipped_dirs("maintenance_pages")
        self._environment = jinja2.Environment(
            loader=jinja2.FileSystemLoader([str(d) for d in directories]),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )

    def render(self, name: str, site: str, support_email: str, company: str) -> str:
        """Render page `name` for `site`. Raises jinja2.TemplateNotFound or TemplateError."""
        context: dict[str, Any] = {
            "site": site,
            "support_email": support_email,
            "company": company,
        }
        return self._environment.get_template(name).render(context)
