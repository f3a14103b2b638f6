"""config.example.toml: written from the schema, and every line of it where it belongs.

The shipped file is the generator's output. Every option commented out in it lands, once
uncommented, in the table that owns it: the fault this guards against is an option of
the top level written after a [table] header, which an operator uncommenting it gets as
`webhooks.playbooks_dir: unknown option`. And uncommenting options, one at a time, all
at once, or a whole kind of a table picked by its `type`, gives a config the loader
accepts.
"""

from __future__ import annotations

import re
import tomllib
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import BaseModel

from daemon.cli.configuration import config_group
from daemon.config import load_config
from daemon.config.example import render_example
from daemon.config.schema import Config, Section

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.toml"
REGENERATE = "make config-example  (or: .venv/bin/lapse config example > config.example.toml)"

_HEADER = re.compile(r"^(?:# )?\[([^\]]+)\]$")
_KIND = re.compile(r'^# --- type = "([^"]+)" ---')


# --- reading the file as an operator does --------------------------------------------


def _commented_toml(line: str) -> str | None:
    """The TOML a commented-out option or header holds; None for prose and other lines."""
    if not line.startswith("# "):
        return None
    body = line[2:]
    try:
        tomllib.loads(body)
    except tomllib.TOMLDecodeError:
        return None
    return body


def _header_path(line: str) -> tuple[str, ...] | None:
    """The key path of a table header, active or commented out; None for other lines."""
    match = _HEADER.match(line)
    if match is None:
        return None
    keys: list[str] = []
    table: dict[str, Any] = tomllib.loads(f"[{match.group(1)}]")
    while table:
        keys.append(next(iter(table)))
        table = table[keys[-1]]
    return tuple(keys)


def _at(document: dict[str, Any], path: tuple[str, ...]) -> Any:
    for part in path:
        document = document[part]
    return document


@dataclass(frozen=True)
class Option:
    """One option line: where it is, the header above it, where it lands."""

    index: int
    commented: bool
    header: int | None  # the line of the nearest header above, active or commented out
    path: tuple[str, ...]  # the key path it lands at (once uncommented)
    kind: tuple[tuple[str, ...], str] | None  # (table, kind) of the `--- type` block it is in


def options(text: str) -> list[Option]:
    """Every option line of `text`, written or commented out, with the table it falls under."""
    found = []
    header: int | None = None
    header_path: tuple[str, ...] = ()
    table: tuple[str, ...] = ()  # the nearest active header's path
    kind: tuple[tuple[str, ...], str] | None = None
    for index, line in enumerate(text.splitlines()):
        path = _header_path(line)
        if path is not None:
            header, header_path = index, path
            if not line.startswith("#"):
                table, kind = path, None
            continue
        marker = _KIND.match(line)
        if marker is not None:
            kind = (table, marker.group(1))
            continue
        commented = line.startswith("#")
        body = _commented_toml(line) if commented else line
        if body and body.strip():
            key = next(iter(tomllib.loads(body)))
            found.append(Option(index, commented, header, (*header_path, key), kind))
    return found


def commented_options(text: str) -> list[Option]:
    """Every commented-out option of `text`."""
    return [option for option in options(text) if option.commented]


def uncomment(text: str, option: Option) -> str:
    """`text` with `option` uncommented, and its table's header if that is commented out."""
    lines = text.splitlines()
    for index in (option.header, option.index):
        if index is not None and lines[index].startswith("# "):
            lines[index] = lines[index][2:]
    return "\n".join(lines) + "\n"


def landing_problems(text: str) -> list[str]:
    """One sentence per commented-out option that, uncommented, breaks the file or lands
    under a table that has no such option (for the kind its `--- type` block names)."""
    problems = []
    for option in commented_options(text):
        line = text.splitlines()[option.index]
        try:
            tomllib.loads(uncomment(text, option))
        except tomllib.TOMLDecodeError as error:
            problems.append(
                f"line {option.index + 1} {line!r}: uncommented, the file breaks: {error}"
            )
            continue
        place = resolve(option.path, dict([option.kind]) if option.kind else {})
        if isinstance(place, str):
            landing = ".".join(option.path)
            problems.append(f"line {option.index + 1} {line!r} lands at '{landing}': {place}")
    return problems


@dataclass(frozen=True)
class Place:
    """Where the schema keeps a key path: the options owning its last key (one per kind
    that has it), and the tables it opens (none for a value)."""

    options: frozenset[tuple[type[BaseModel], str]]
    tables: tuple[type[BaseModel], ...]


def resolve(path: tuple[str, ...], kinds: dict[tuple[str, ...], str]) -> Place | str:
    """The schema's place for `path`, within the kinds `kinds` names; or why there is none."""
    place = Place(frozenset(), (Config,))
    walked: tuple[str, ...] = ()
    parts = list(path)
    while parts:
        part = parts.pop(0)
        owners = [model for model in place.tables if part in model.model_fields]
        if not owners:
            if not place.tables:
                return f"'{'.'.join(walked)}' is a value, not a table"
            named = f' (type = "{kinds[walked]}")' if walked in kinds else ""
            return f"{'.'.join(walked) or 'the top level'}{named} has no option '{part}'"
        walked += (part,)
        annotation = owners[0].model_fields[part].annotation
        if typing.get_origin(annotation) is dict and _sections(typing.get_args(annotation)[1]):
            walked += (parts.pop(0),) if parts else ()
            tables = _sections(typing.get_args(annotation)[1])
        else:
            kind = kinds.get(walked)
            tables = [model for model in _sections(annotation) if kind in (None, _kind_of(model))]
        place = Place(frozenset((model, part) for model in owners), tuple(tables))
    return place


def _sections(annotation: Any) -> list[type[BaseModel]]:
    members = typing.get_args(annotation) or (annotation,)
    return [m for m in members if isinstance(m, type) and issubclass(m, Section)]


def _tables(model: type[BaseModel]) -> set[type[BaseModel]]:
    """`model` and every table model below it."""
    found = {model}
    for info in model.model_fields.values():
        # A member of a union, or the value of a dict of named tables.
        for inner in typing.get_args(info.annotation) or (info.annotation,):
            for table in _sections(inner):
                found |= _tables(table)
    return found


def _kind_of(model: type[BaseModel]) -> str | None:
    field = model.model_fields.get("type")
    return str(typing.get_args(field.annotation)[0]) if field else None


def in_use(text: str, option: Option) -> bool:
    """Whether the option belongs to the kind its table uses (or to no kind at all)."""
    if option.kind is None:
        return True
    table, kind = option.kind
    return bool(_at(tomllib.loads(text), table)["type"] == kind)


def kind_switches(text: str) -> list[tuple[tuple[str, ...], str]]:
    """Every (table, kind) the file shows commented out, for a table picked by `type`."""
    document = tomllib.loads(text)
    shown = {option.kind for option in commented_options(text) if option.kind}
    return sorted((table, kind) for table, kind in shown if _at(document, table)["type"] != kind)


def with_kind(text: str, table: tuple[str, ...], kind: str) -> str:
    """`text` switched to `kind` for `table`: the `type` line set, the options of the kind
    in use commented out, and every option (and header) of `kind` uncommented."""
    lines = text.splitlines()
    current: tuple[str, ...] = ()
    block: str | None = None
    in_use_kind: str | None = None
    for index, line in enumerate(lines):
        path = _header_path(line)
        if path is not None and not line.startswith("#"):
            current, block = path, None
            continue
        if current != table:
            continue
        marker = _KIND.match(line)
        if marker is not None:
            block = marker.group(1)
        elif block is None and line.startswith("type = "):
            in_use_kind = str(tomllib.loads(line)["type"])
            lines[index] = f'type = "{kind}"'
        elif block is not None and block == in_use_kind and line and not line.startswith("#"):
            lines[index] = f"# {line}"
        elif block == kind and _commented_toml(line):
            lines[index] = line[2:]
    return "\n".join(lines) + "\n"


def _load(text: str, tmp_path: Path) -> Config:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return load_config(path)


SHIPPED = EXAMPLE.read_text()
KIND_SWITCHES = kind_switches(SHIPPED)


# --- the shipped file --------------------------------------------------------------------


def test_the_shipped_example_is_what_the_schema_writes() -> None:
    assert render_example() == SHIPPED, (
        "config.example.toml differs from what daemon/config/schema.py describes; "
        f"rewrite it with: {REGENERATE}"
    )


def test_lapse_config_example_prints_it() -> None:
    result = CliRunner().invoke(config_group, ["example"])
    assert result.exit_code == 0, result.output
    assert result.output == render_example()


def test_the_example_parses_and_loads() -> None:
    assert tomllib.loads(SHIPPED)["billing"]["type"] == "file"
    assert load_config(EXAMPLE).policy_for("business").notice_period.days == 14


def test_every_commented_option_lands_under_the_table_that_owns_it() -> None:
    assert landing_problems(SHIPPED) == []


def test_every_option_of_every_table_is_shown() -> None:
    shown: set[tuple[type[BaseModel], str]] = set()
    headers = [path for path in map(_header_path, SHIPPED.splitlines()) if path]
    written = [
        (option.path, dict([option.kind]) if option.kind else {}) for option in options(SHIPPED)
    ]
    for path, kinds in written + [(header, {}) for header in headers]:
        place = resolve(path, kinds)
        assert not isinstance(place, str), place
        shown |= place.options
    every = {(model, name) for model in _tables(Config) for name in model.model_fields}
    missing = sorted(f"{model.__name__}.{name}" for model, name in every - shown)
    assert missing == []


def test_each_commented_option_uncommented_alone_loads(tmp_path: Path) -> None:
    for option in commented_options(SHIPPED):
        if in_use(SHIPPED, option):
            _load(uncomment(SHIPPED, option), tmp_path)  # raises ConfigError naming the key


def test_every_option_of_the_kinds_in_use_uncommented_together_loads(tmp_path: Path) -> None:
    text = SHIPPED
    for option in commented_options(SHIPPED):
        if in_use(SHIPPED, option):
            text = uncomment(text, option)
    assert _load(text, tmp_path).daemon.listen == "127.0.0.1:8470"


@pytest.mark.parametrize(
    ("table", "kind"), KIND_SWITCHES, ids=[f"{'.'.join(t)}={k}" for t, k in KIND_SWITCHES]
)
def test_every_other_kind_with_all_its_options_uncommented_loads(
    table: tuple[str, ...], kind: str, tmp_path: Path
) -> None:
    config: Any = _load(with_kind(SHIPPED, table, kind), tmp_path)
    for part in table:
        config = getattr(config, part)
    assert config.type == kind


def test_every_kind_of_every_table_picked_by_type_is_shown() -> None:
    assert KIND_SWITCHES == [
        (("backup", "store"), "s3"),
        (("billing",), "http"),
        (("billing",), "sql"),
        (("billing",), "stripe"),
        (("billing",), "whmcs"),
        (("notices", "notifier"), "smtp"),
    ]


# --- the checks fail on a planted fault ---------------------------------------------------


def _move_line(text: str, starts_with: str, after: str | None) -> str:
    """`text` with its line starting `starts_with` moved after the line starting `after`
    (None: to the end)."""
    lines = text.splitlines()
    moved = next(line for line in lines if line.startswith(starts_with))
    lines.remove(moved)
    at = (
        len(lines)
        if after is None
        else 1 + next(i for i, line in enumerate(lines) if line.startswith(after))
    )
    lines.insert(at, moved)
    return "\n".join(lines) + "\n"


def test_a_top_level_option_written_after_a_table_is_found() -> None:
    planted = _move_line(SHIPPED, "# playbooks_dir = ", None)
    problems = landing_problems(planted)
    assert len(problems) == 1
    assert "lands at 'webhooks.playbooks_dir': webhooks has no option" in problems[0]


def test_an_option_written_under_another_kind_is_found() -> None:
    planted = _move_line(SHIPPED, "# query = ", '# url = "https://billing.example.com/lapse')
    problems = landing_problems(planted)
    assert len(problems) == 1
    assert "lands at 'billing.query': billing (type = \"http\") has no option" in problems[0]


def test_an_option_that_breaks_the_file_once_uncommented_is_found() -> None:
    # A second `path` in the file kind's block, beside the one written.
    planted = SHIPPED.replace('# format = "auto"', '# path = "/srv/other.json"', 1)
    problems = landing_problems(planted)
    assert len(problems) == 1
    assert "uncommented, the file breaks" in problems[0]


def test_a_description_that_would_read_as_an_option_stops_the_generator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Config, "__doc__", 'password = { env = "NAME" }')
    with pytest.raises(ValueError, match="would read as an option"):
        render_example()
