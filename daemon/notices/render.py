"""Rendering one notice kind into a subject, a plain-text body and an HTML body."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment, Template, TemplateError, TemplateNotFound

from daemon.domain.notice_kinds import NoticeKind
from daemon.notices.errors import RenderError


@dataclass(frozen=True, slots=True)
class RenderedNotice:
    """A notice's three rendered parts."""

    subject: str
    text: str
    html: str


def render_notice(env: Environment, kind: NoticeKind, context: Mapping[str, Any]) -> RenderedNotice:
    """Render the kind's text template (with its `subject` block) and its HTML template
    (`<kind>.txt`, `<kind>.html`) with `context`.

    The subject is rendered first and passed to both bodies as `subject`.
    Raises RenderError naming the template when one is missing, broken or
    uses an undefined variable.
    """
    text_template = _load(env, kind.text_template)
    html_template = _load(env, kind.html_template)
    subject = _render_subject(text_template, context)
    full = {**context, "subject": subject}
    return RenderedNotice(
        subject=subject,
        text=_render(text_template, full),
        html=_render(html_template, full),
    )


def _load(env: Environment, name: str) -> Template:
    """Return the template `name`; raises RenderError when it is missing or does not parse."""
    try:
        return env.get_template(name)
    except TemplateNotFound as error:
        raise RenderError(f"notice template {name} not found") from error
    except TemplateError as error:
        raise RenderError(f"notice template {name}: {error}") from error


def _render(template: Template, context: Mapping[str, Any]) -> str:
    """Return `template` rendered; raises RenderError naming it on any template error."""
    try:
        return template.render(context)
    except TemplateError as error:
        raise RenderError(f"notice template {template.name}: {error}") from error


def _render_subject(template: Template, context: Mapping[str, Any]) -> str:
    """Return the template's `subject` block as one line.

    Whitespace is collapsed so a subject written over several lines (or a
    client name with a newline in it) can never break the email header.
    Raises RenderError when the block is missing or fails to render.
    """
    block = template.blocks.get("subject")
    if block is None:
        raise RenderError(f"notice template {template.name} has no 'subject' block")
    try:
        text = "".join(block(template.new_context(dict(context))))
    except TemplateError as error:
        raise RenderError(f"notice template {template.name} (subject): {error}") from error
    return " ".join(text.split())
