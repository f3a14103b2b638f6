"""Finding bare status and state strings in the daemon's source.

Statuses and states live in one place, `daemon.domain.states`; the rest of the
package writes and compares the enum members. This scanner reads Python source
(without importing it) and reports where a bare string stands in for one:

- a status: any string literal equal to a value of an enum that types a `status`
  column of the state database (daemon.store.models), docstrings excepted. The
  words are the stored ones ("pending", "done", "corrupt", ...), so wherever one
  appears as a whole string it is a status written out by hand.
- a value of any other enum of the vocabulary (the account's State, a restore's
  outcome): a string literal equal to one where such a value is meant: an operand
  of a comparison (or an element of a tuple, list or set compared with `in`), an
  argument of a column's `.in_()`/`.not_in()`, or the value given to a name,
  attribute or keyword called `status`, `state` or `outcome` (or ending in
  `_status`, `_state`, `_outcome`). Elsewhere the same words are field names
  ("exempt") or verbs ("restored") and are left alone.

Run it as a script to count what a tree holds:
`.venv/bin/python tests/unit/bare_statuses.py [PACKAGE_DIR]` prints each finding and
the total, and exits 1 when there is any.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from sqlalchemy import Enum

from daemon.domain import states
from daemon.store.models import Base

# The vocabulary itself, and the migrations (fixed history: they may name strings).
EXEMPT_DIRS = (Path("domain"), Path("store/migrations"))


def _status_enums() -> set[type[StrEnum]]:
    """The enums that type a `status` column of the state database."""
    return {
        column.type.enum_class
        for table in Base.metadata.tables.values()
        for column in table.columns
        if column.name == "status"
        and isinstance(column.type, Enum)
        and column.type.enum_class is not None
        and issubclass(column.type.enum_class, StrEnum)
    }


def _vocabulary() -> set[type[StrEnum]]:
    """Every enum of daemon.domain.states."""
    return {
        value
        for value in vars(states).values()
        if isinstance(value, type)
        and issubclass(value, StrEnum)
        and value.__module__ == states.__name__
    }


STATUS_ENUMS = _status_enums()
# Scanned where a status, state or outcome is meant (their words mean other things too).
CONTEXT_ENUMS = _vocabulary() - STATUS_ENUMS
STATUS_VALUES = frozenset(member.value for enum in STATUS_ENUMS for member in enum)
CONTEXT_VALUES = frozenset(member.value for enum in CONTEXT_ENUMS for member in enum)
_MEANING = ("status", "state", "outcome")


@dataclass(frozen=True)
class Finding:
    """One bare string: where it is, what it says, and which rule refused it."""

    path: str
    line: int
    value: str
    rule: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.value!r} ({self.rule})"


def _docstrings(tree: ast.Module) -> set[int]:
    """The ids of the docstring nodes of the module and of every class and function."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _strings(node: ast.expr) -> Iterator[ast.Constant]:
    """The string literal `node`, or the string literals directly inside a tuple, list
    or set literal (or a starred one inside it), or the branches of a conditional
    expression."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node
    elif isinstance(node, ast.IfExp):
        yield from _strings(node.body)
        yield from _strings(node.orelse)
    elif isinstance(node, ast.Tuple | ast.List | ast.Set):
        for element in node.elts:
            yield from _strings(element.value if isinstance(element, ast.Starred) else element)


def _names_a_value(target: ast.expr | str | None) -> bool:
    """Whether `target` (a name, an attribute or a keyword's name) is called `status`,
    `state` or `outcome`, or ends in `_status`, `_state` or `_outcome`."""
    if isinstance(target, ast.Name):
        target = target.id
    elif isinstance(target, ast.Attribute):
        target = target.attr
    return isinstance(target, str) and any(
        target == word or target.endswith(f"_{word}") for word in _MEANING
    )


def _assigned(node: ast.AST) -> Iterator[tuple[ast.expr | str | None, ast.expr]]:
    """The (target, value) pairs `node` binds, with tuple unpacking matched element by
    element and a keyword argument as (its name, its value)."""
    if isinstance(node, ast.Assign):
        for target in node.targets:
            if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                yield from zip(target.elts, node.value.elts, strict=False)
            else:
                yield target, node.value
    elif isinstance(node, ast.AnnAssign) and node.value is not None:
        yield node.target, node.value
    elif isinstance(node, ast.keyword):
        yield node.arg, node.value


def _meant_literals(node: ast.AST) -> Iterator[ast.Constant]:
    """The string literals `node` puts where a status, state or outcome is meant."""
    if isinstance(node, ast.Compare):
        for operand in (node.left, *node.comparators):
            yield from _strings(operand)
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("in_", "not_in")
    ):
        for argument in node.args:
            yield from _strings(argument)
    for target, value in _assigned(node):
        if _names_a_value(target):
            yield from _strings(value)


def scan_source(source: str, path: str = "<source>") -> list[Finding]:
    """Return the bare statuses and states in the Python `source` (named `path`)."""
    tree = ast.parse(source, filename=path)
    docstrings = _docstrings(tree)
    findings: dict[int, Finding] = {}
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and node.value in STATUS_VALUES
            and id(node) not in docstrings
        ):
            findings[id(node)] = Finding(path, node.lineno, node.value, "status")
        for literal in _meant_literals(node):
            if literal.value in CONTEXT_VALUES and id(literal) not in findings:
                findings[id(literal)] = Finding(path, literal.lineno, literal.value, "in context")
    return sorted(findings.values(), key=lambda finding: (finding.line, finding.value))


def scan_package(root: Path) -> list[Finding]:
    """Return the bare statuses and states in every module under the package `root`,
    except the vocabulary and the migrations."""
    findings: list[Finding] = []
    for module in sorted(root.rglob("*.py")):
        relative = module.relative_to(root)
        if any(relative.is_relative_to(exempt) for exempt in EXEMPT_DIRS):
            continue
        findings += scan_source(module.read_text(), str(Path(root.name) / relative))
    return findings


def main(argv: list[str]) -> int:
    """Print the findings under the package directory argv[1] (default: daemon) and
    their count; return 1 when there is any."""
    root = Path(argv[1]) if len(argv) > 1 else Path(states.__file__).parents[1]
    findings = scan_package(root)
    for finding in findings:
        print(finding)
    files = len({finding.path for finding in findings})
    print(f"{len(findings)} bare status strings in {files} files")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
