"""The example configuration, written from the schema: `lapse config example`.

config.example.toml is this module's output (a test keeps the two equal); descriptions,
examples and defaults live once, in daemon.config.schema, and nothing here knows an
option by name. How the schema becomes TOML:

- A table is written `[a.b]`, preceded by its field's description. Its own options come
  first, then its sub-tables, because TOML puts every key after a header into that
  table; options outside any table come before the first header.
- A required option is written with its first example. An optional one is commented
  out (`# key = value`) with its default, or with its first example where the default
  is unset or empty; uncommented alone, it lands in the table that owns it. A table
  field's example, when it names an option, takes the place of that option's first
  example there (the PostgreSQL port of a host is not the MariaDB one, though both
  tables use one model).
- A table that may be left out and cannot be empty (`auth: HttpAuth | None`) has its
  header commented out too; one with defaults for every option is written, empty.
- A table picked by its `type` (billing, backup.store, notices.notifier) is written
  with the kind its field's example names; every kind's options follow a line
  `# --- type = "<kind>" ---`, those of the kinds not in use commented out.
- Named tables (`dict[name, table]`: policy plans, hosts) are written one per entry of
  the field's example, with the entry's keys as given; the first entry also lists the
  table's other options, commented out.
"""

from __future__ import annotations

import inspect
import textwrap
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import tomlkit
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from daemon.config.durations import format_duration
from daemon.config.schema import Config, Section

_WIDTH = 88

_PREAMBLE = (
    "Written by `lapse config example` from the schema (daemon/config/schema.py). A "
    "commented-out option shows its default, or an example where it has none: uncomment "
    "it to change it. A table picked by its `type` lists the options of every kind after "
    'a line `--- type = "<kind>" ---`; those of the kinds not in use are commented out.'
)
_TOP_LEVEL = (
    "Options outside any table come first: TOML puts every key written after a [table] "
    "header into that table."
)


def render_example() -> str:
    """Return the example configuration as TOML text: every table and option of `Config`.

    Raises ValueError when a description would read as an option once uncommented (the
    file's comments must never turn into keys).
    """
    root = _build_table(Config, (), active=True, given={}, hints={})
    lines = [*_comment(inspect.cleandoc(Config.__doc__ or "")), "", *_comment(_PREAMBLE)]
    if root.body:
        lines += ["", *_comment(_TOP_LEVEL), *root.body]
    for table in root.tables:
        lines += _table_lines(table)
    return "\n".join(lines) + "\n"


@dataclass
class _Table:
    """One table as written: its header (maybe commented out), its options, its sub-tables."""

    path: tuple[str, ...]
    active: bool
    comment: list[str] = field(default_factory=list)
    body: list[str] = field(default_factory=list)
    tables: list[_Table] = field(default_factory=list)


def _table_lines(table: _Table) -> list[str]:
    """The lines of `table`: a blank line, its comment, its header, its options, then its
    sub-tables, each the same way."""
    header = "[" + ".".join(tomlkit.key(part).as_string() for part in table.path) + "]"
    lines = ["", *table.comment, header if table.active else f"# {header}", *table.body]
    for sub in table.tables:
        lines += _table_lines(sub)
    return lines


def _build_table(
    model: type[BaseModel],
    path: tuple[str, ...],
    *,
    active: bool,
    given: Mapping[str, Any],
    hints: Mapping[str, Any],
    only_given: bool = False,
    skip: frozenset[str] = frozenset(),
) -> _Table:
    """Lay out `model` as the table at `path`.

    `given` holds values written as they are (a named table's example entry);
    `only_given` writes nothing else (the second and later entries). `hints` holds the
    examples the table's own field gives its options. `skip` names options written
    elsewhere (the `type` of a table picked by kind).
    """
    table = _Table(path, active)
    for name, info in model.model_fields.items():
        if name in skip or (only_given and name not in given):
            continue
        shape = _shape(info.annotation)
        if isinstance(shape, _Value):
            table.body += _option_lines(name, info, active=active, given=given, hints=hints)
        elif isinstance(shape, _Kinds):
            table.tables.append(
                _kinds_table((*path, name), info, shape, active=active, given=given.get(name))
            )
        elif isinstance(shape, _Named):
            table.tables += _named_tables((*path, name), info, shape.model, active=active)
        else:
            sub = _build_table(
                shape.model,
                (*path, name),
                active=active and (info.is_required() or info.default is not None),
                given=given.get(name) or {},
                hints=_first_example(info) or {},
            )
            sub.comment = _comment(info.description or "")
            table.tables.append(sub)
    return table


def _kinds_table(
    path: tuple[str, ...],
    info: FieldInfo,
    shape: _Kinds,
    *,
    active: bool,
    given: Mapping[str, Any] | None,
) -> _Table:
    """Lay out a table picked by its `type`: the kind in use, then every other kind."""
    hints = _first_example(info) or {}
    chosen = (given or hints).get("type") or _kind(shape.models[0])
    table = _Table(path, active, comment=_comment(info.description or ""))
    kinds = [_kind(model) for model in shape.models]
    type_info = shape.models[0].model_fields["type"]
    guide = (
        f"{type_info.description} One of {_choices(kinds)}. Each kind's options follow its "
        "--- line; to switch, set `type` and swap the options."
    )
    table.body = [*_comment(guide), f"type = {_toml(chosen)}"]
    for model in sorted(shape.models, key=lambda model: _kind(model) != chosen):
        in_use = _kind(model) == chosen
        kind = _build_table(
            model,
            path,
            active=active and in_use,
            given=(given or {}) if in_use else {},
            hints=hints if in_use else {},
            skip=frozenset({"type"}),
        )
        marker = _comment(f'--- type = "{_kind(model)}" --- {_summary(model)}')
        table.body += ["", *marker, *kind.body]
        for sub in kind.tables:
            sub.comment = marker + sub.comment
            table.tables.append(sub)
    return table


def _named_tables(
    path: tuple[str, ...], info: FieldInfo, model: type[BaseModel], *, active: bool
) -> list[_Table]:
    """Lay out one table per entry of the field's example (policy plans, hosts)."""
    tables = []
    for index, (name, entry) in enumerate((_first_example(info) or {}).items()):
        table = _build_table(
            model, (*path, name), active=active, given=entry, hints={}, only_given=index > 0
        )
        if index == 0:
            table.comment = _comment(info.description or "")
        tables.append(table)
    return tables


def _option_lines(
    name: str,
    info: FieldInfo,
    *,
    active: bool,
    given: Mapping[str, Any],
    hints: Mapping[str, Any],
) -> list[str]:
    """The description and the `key = value` line of one option, commented out if optional."""
    examples = list(info.examples or ())
    if name in hints:
        examples[:1] = [hints[name]]  # the table's own example comes first, in its place
    if name in given:
        value, written, examples = given[name], active, []
    elif info.is_required():
        value, written = examples[0], active
    else:
        default = info.get_default(call_default_factory=True)
        value = examples[0] if _is_empty(default) else default
        written = False
    text = info.description or ""
    choices = _literal_choices(info.annotation)
    if choices:
        text += f" One of {_choices(choices)}."
    others = [_toml(example) for example in examples if _toml(example) != _toml(value)]
    if others:
        text += " E.g. " + ", ".join(others) + "."
    line = f"{tomlkit.key(name).as_string()} = {_toml(value)}"
    return [*_comment(text), line if written else f"# {line}"]


# --- the shape of a field ---------------------------------------------------------------


@dataclass(frozen=True)
class _Value:
    """A value written on the option's line, inline tables included (secrets, maps)."""


@dataclass(frozen=True)
class _SubTable:
    """A table of its own, `[path.name]`."""

    model: type[BaseModel]


@dataclass(frozen=True)
class _Kinds:
    """A table picked by its `type`, one of several models."""

    models: tuple[type[BaseModel], ...]


@dataclass(frozen=True)
class _Named:
    """Tables by name: `[path.name.<entry>]`."""

    model: type[BaseModel]


def _shape(annotation: Any) -> _Value | _SubTable | _Kinds | _Named:
    """Say how a field with this annotation is written."""
    members = _without_none(annotation)
    sections = [m for m in members if isinstance(m, type) and issubclass(m, Section)]
    if len(sections) > 1:
        return _Kinds(tuple(sections))
    if len(sections) == 1:
        return _SubTable(sections[0])
    if typing.get_origin(annotation) is dict:
        value_type = typing.get_args(annotation)[1]
        if isinstance(value_type, type) and issubclass(value_type, Section):
            return _Named(value_type)
    return _Value()


def _without_none(annotation: Any) -> list[Any]:
    """The members of a union other than None; the annotation alone when not a union."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    return [annotation]


def _literal_choices(annotation: Any) -> list[str]:
    """The values a Literal annotation (or an optional one) allows; [] for other types."""
    for member in _without_none(annotation):
        if typing.get_origin(member) is Literal:
            return [str(arg) for arg in typing.get_args(member)]
    return []


def _kind(model: type[BaseModel]) -> str:
    """The `type` value that picks `model`."""
    return str(typing.get_args(model.model_fields["type"].annotation)[0])


# --- text --------------------------------------------------------------------------------


def _summary(model: type[BaseModel]) -> str:
    """The first paragraph of a model's docstring."""
    return inspect.cleandoc(model.__doc__ or "").split("\n\n")[0].replace("\n", " ")


def _comment(text: str) -> list[str]:
    """`text` as comment lines, paragraph by paragraph. Raises ValueError (see render_example)."""
    lines: list[str] = []
    for paragraph in text.split("\n\n"):
        if lines:
            lines.append("#")
        wrapped = textwrap.wrap(
            " ".join(paragraph.split()),
            _WIDTH - 2,
            break_long_words=False,
            break_on_hyphens=False,
        )
        lines += [f"# {line}" for line in wrapped]
    for line in lines:
        if _reads_as_toml(line[2:]):
            raise ValueError(f"a comment would read as an option once uncommented: {line!r}")
    return lines


def _reads_as_toml(text: str) -> bool:
    """Whether `text` is a TOML table header or key/value line."""
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return False
    return bool(text.strip())


def _choices(values: list[str]) -> str:
    """`"a", "b" or "c"`."""
    quoted = [_toml(value) for value in values]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


# --- values -----------------------------------------------------------------------------


def _first_example(info: FieldInfo) -> Any:
    """The field's first example, or None."""
    return info.examples[0] if info.examples else None


def _is_empty(value: object) -> bool:
    """Whether a default says nothing worth showing: unset, or an empty string or collection
    (False and 0 are values)."""
    if value is None or value is PydanticUndefined:
        return True
    return isinstance(value, str | list | tuple | dict) and not value


def _toml(value: object) -> str:
    """`value` written as a TOML value (tables inline), via tomlkit."""
    return _item(_plain(value)).as_string()


def _item(value: object) -> tomlkit.items.Item:
    """A tomlkit item for a plain value; tables become inline tables."""
    if isinstance(value, dict):
        table = tomlkit.inline_table()
        for key, inner in value.items():
            table.append(key, _item(inner))
        return table
    if isinstance(value, list):
        array = tomlkit.array()
        array.extend(_item(inner) for inner in value)
        return array
    return tomlkit.item(value)


def _plain(value: object) -> object:
    """`value` as TOML's plain types, the way an operator writes it (durations as "7d")."""
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, Decimal | Path):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, BaseModel):
        return _plain(value.model_dump(exclude_none=True))
    if isinstance(value, Mapping):
        return {str(key): _plain(inner) for key, inner in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(inner) for inner in value]
    return value
