"""Rendering step parameters from the account, with every value shell-quoted in commands.

In a command, `{{ service.docroot }}` becomes `'/srv/www/it'"'"'s'`: whatever
billing data says, it stays one word. `{{ value | raw }}` opts out, for values a
playbook author built from constants. Paths and URLs render plainly and are
quoted where they are used.
"""

from __future__ import annotations

import shlex
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from daemon.domain.errors import LapseError


class Raw(str):
    """A string the command renderer passes through unquoted."""

    __slots__ = ()


class TemplateError(LapseError):
    """A step parameter could not be rendered; names the step and the problem."""


def _shell_quote(value: Any) -> Any:
    if isinstance(value, Raw):
        return str(value)
    if value is None:
        return "''"
    if isinstance(value, list | tuple):
        return " ".join(shlex.quote(str(item)) for item in value)
    return shlex.quote(str(value))


def _environment(quote: bool) -> SandboxedEnvironment:
    # Sandboxed: playbooks are operator-written, and a template must not reach into
    # Python internals through the context objects.
    environment = SandboxedEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        finalize=_shell_quote if quote else None,
    )
    environment.filters["raw"] = lambda value: Raw(str(value))
    environment.filters["shell_join"] = lambda values: Raw(
        " ".join(shlex.quote(str(v)) for v in values)
    )
    return environment


_COMMANDS = _environment(quote=True)
_PLAIN = _environment(quote=False)


def render_command(template: str, context: dict[str, Any], where: str) -> str:
    """Render a command with every interpolated value shell-quoted.

    Raises TemplateError naming `where` (the step) for syntax errors or unknown names.
    """
    return _render(_COMMANDS, template, context, where)


def render_text(template: str, context: dict[str, Any], where: str) -> str:
    """Render a path, URL or header without quoting. Raises TemplateError."""
    return _render(_PLAIN, template, context, where)


def evaluate(expression: str, context: dict[str, Any], where: str) -> bool:
    """Evaluate a `when` expression to a truth value. Raises TemplateError."""
    try:
        return bool(_PLAIN.compile_expression(expression)(**context))
    except jinja2.TemplateError as error:
        raise TemplateError(f"{where}: cannot evaluate when = {expression!r}: {error}") from error


def _render(
    environment: SandboxedEnvironment, template: str, context: dict[str, Any], where: str
) -> str:
    try:
        return environment.from_string(template).render(context)
    except jinja2.TemplateError as error:
        raise TemplateError(f"{where}: cannot render {template[:60]!r}: {error}") from error
