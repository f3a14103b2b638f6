"""The documents name only files, modules and tests that exist.

Every path under daemon/, tests/, playbooks/, bench/ or docs/ that a document mentions,
every `tests/...::test_name`, every bare `test_name` (looked up in the test file the
document named last), and every module named like `daemon.backup.proof` must exist, so a
move or a rename that forgets the docs fails here. CHANGELOG.md is left out: it names
what the tree held then. The code's own pointers into docs/ are checked too.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROOMS = frozenset(path.name for path in (ROOT / "daemon").iterdir() if path.is_dir())

_PATH = re.compile(r"(?<![\w./-])((?:daemon|tests|playbooks|bench|docs)/[\w./*<>{}-]*)(?:::(\w+))?")
_BARE_TEST = re.compile(r"`(test_\w+)`")
_MODULE = re.compile(r"(?<![\w./-])daemon(?:\.\w+)+")
_DOC = re.compile(r"(?<![\w./-])docs/[\w.-]+\.md")


def documents() -> list[Path]:
    """The Markdown files to check: the root's, docs/, and those beside the code."""
    found = [*ROOT.glob("*.md"), *(ROOT / "docs").glob("*.md")]
    for folder in ("playbooks", "maintenance_pages", "daemon"):
        found += (ROOT / folder).rglob("*.md")
    return sorted(path for path in found if path.name != "CHANGELOG.md")


def reference_problems(text: str, name: str) -> list[str]:
    """One sentence per reference in `text` (a document called `name`) that does not exist."""
    problems: list[str] = []
    last_test_file: Path | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        where = f"{name}:{number}"
        for match in _PATH.finditer(line):
            path, test = match.group(1).rstrip(".,:;"), match.group(2)
            if "<" in path or "{" in path:
                continue  # a pattern such as playbooks/<name>.toml
            problem = _path_problem(path)
            if problem is None and test is not None:
                problem = _test_problem(ROOT / path, test)
            if problem:
                named = f"{path}::{test}" if test else path
                problems.append(f"{where}: {named}: {problem}")
            elif path.startswith("tests/") and path.endswith(".py"):
                last_test_file = ROOT / path
        for match in _BARE_TEST.finditer(line):
            if f"::{match.group(1)}" in line:
                continue  # checked with its file above
            problem = _bare_test_problem(match.group(1), last_test_file)
            if problem:
                problems.append(f"{where}: {match.group(1)}: {problem}")
        for match in _MODULE.finditer(line):
            problem = _module_problem(match.group(0).rstrip("."))
            if problem:
                problems.append(f"{where}: {match.group(0)}: {problem}")
    return problems


def _path_problem(path: str) -> str | None:
    if "*" in path:
        return None if any(ROOT.glob(path)) else "no file matches"
    return None if (ROOT / path).exists() else "no such file or directory"


def _test_problem(file: Path, test: str) -> str | None:
    if not file.is_file():
        return f"{file.relative_to(ROOT)} is not a file"
    if re.search(rf"^\s*(?:async )?def {test}\(", file.read_text(), re.MULTILINE):
        return None
    return f"no test {test} in {file.relative_to(ROOT)}"


def _bare_test_problem(test: str, last_test_file: Path | None) -> str | None:
    """A bare test name belongs to the test file named last, or else to any test file."""
    if last_test_file is not None:
        return _test_problem(last_test_file, test)
    for file in (ROOT / "tests").rglob("test_*.py"):
        if _test_problem(file, test) is None:
            return None
    return "no such test anywhere under tests/"


def _module_problem(dotted: str) -> str | None:
    """`daemon.<room>...`: a module, or a module and names defined in it."""
    parts = dotted.split(".")
    if len(parts) < 2 or parts[1] not in ROOMS:
        return None  # a config key such as daemon.listen, not a module
    for cut in range(len(parts), 1, -1):
        module_path = ROOT.joinpath(*parts[:cut])
        if module_path.with_suffix(".py").is_file() or (module_path / "__init__.py").is_file():
            value: object = importlib.import_module(".".join(parts[:cut]))
            for attribute in parts[cut:]:
                if not hasattr(value, attribute):
                    return f"{'.'.join(parts[:cut])} has no {attribute}"
                value = getattr(value, attribute)
            return None
    return "no such module"


@pytest.mark.parametrize("document", documents(), ids=lambda path: str(path.relative_to(ROOT)))
def test_every_file_module_and_test_a_document_names_exists(document: Path) -> None:
    name = str(document.relative_to(ROOT))
    assert reference_problems(document.read_text(), name) == []


def code_files() -> list[Path]:
    """The files whose comments and docstrings may point into docs/ (not this one, which
    names a missing document on purpose)."""
    found = [ROOT / "Makefile", ROOT / "pyproject.toml", *(ROOT / "scripts").glob("*")]
    for folder in ("daemon", "tests", "bench"):
        found += (ROOT / folder).rglob("*.py")
    return sorted(path for path in found if path != Path(__file__).resolve())


def test_every_document_the_code_points_to_exists() -> None:
    missing = [
        f"{file.relative_to(ROOT)}: {match.group(0)}"
        for file in code_files()
        for match in _DOC.finditer(file.read_text())
        if not (ROOT / match.group(0)).is_file()
    ]
    assert missing == []


def test_the_documents_checked_include_the_guides() -> None:
    names = {str(path.relative_to(ROOT)) for path in documents()}
    assert {"README.md", "CONTRIBUTING.md", "docs/architecture.md"} <= names
    assert "CHANGELOG.md" not in names


def test_a_reference_gone_stale_is_named() -> None:
    planted = "\n".join(
        [
            "Proof lives in `daemon/backup/proof.py`, moved from `daemon/backup/verify_old.py`.",
            "Guarded by `tests/lab/test_deletion_proof.py::test_no_such_attack`,",
            "and `tests/lab/test_payment_wins.py`: `test_a_payment_recorded_before_a_crash_"
            "is_acted_on_at_start`, `test_gone_missing`.",
            "See `daemon.backup.proof` and `daemon.backup.nowhere`, and `daemon.listen`.",
            "The invariants were in docs/invariants.md.",
        ]
    )
    assert reference_problems(planted, "planted.md") == [
        "planted.md:1: daemon/backup/verify_old.py: no such file or directory",
        "planted.md:2: tests/lab/test_deletion_proof.py::test_no_such_attack: "
        "no test test_no_such_attack in tests/lab/test_deletion_proof.py",
        "planted.md:3: test_gone_missing: no test test_gone_missing in "
        "tests/lab/test_payment_wins.py",
        "planted.md:4: daemon.backup.nowhere: daemon.backup has no nowhere",
        "planted.md:5: docs/invariants.md: no such file or directory",
    ]
