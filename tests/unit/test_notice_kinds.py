"""Each notice kind is defined once, with all its facts, in daemon/domain/notice_kinds.py.

Adding a kind touches its table entry and its two templates, nothing else: every kind
has its templates; no module outside the table keeps a table of kinds, branches on
one, or spells a kind's value (a scan that fails each planted offender); and a kind
added to a copy of the package with only those three files is rendered, previewed,
reported and sent after its act.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import String

from daemon.domain.notice_kinds import NoticeFacts, NoticeKind
from daemon.domain.phases import Phase
from daemon.domain.states import State
from daemon.notices.templates import create_environment
from daemon.store.models import Correspondence

_ROOT = Path(__file__).resolve().parents[2]
_TABLE = "daemon/domain/notice_kinds.py"
_TEMPLATES = "daemon/templates/notices"
_VALUES = frozenset(kind.value for kind in NoticeKind)
_MEMBERS = frozenset(kind.name for kind in NoticeKind)
# A kind's value that means something else where it stands: (module, word) -> what.
_OTHER_MEANINGS = {
    ("daemon/domain/states.py", "payment-plan"): "the side state an agreed plan puts one in",
    ("daemon/backup/gate.py", "deletion"): "why a backup is made",
}


def _kind_names(tree: ast.Module) -> set[str]:
    """Return the names `tree` binds to NoticeKind."""
    return {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "daemon.domain.notice_kinds"
        for alias in node.names
        if alias.name == "NoticeKind"
    }


def _is_kind(node: ast.expr, names: set[str]) -> bool:
    """Return whether `node` names NoticeKind (`NoticeKind`, an alias, `module.NoticeKind`)."""
    return (isinstance(node, ast.Name) and node.id in names) or (
        isinstance(node, ast.Attribute) and node.attr == "NoticeKind"
    )


def _is_member(node: ast.expr, names: set[str]) -> bool:
    """Return whether `node` is a NoticeKind member (`NoticeKind.FINAL`, its `.value`...)."""
    if isinstance(node, ast.Attribute) and node.attr in ("value", "name"):
        node = node.value
    return isinstance(node, ast.Attribute) and node.attr in _MEMBERS and _is_kind(node.value, names)


def kind_facts_outside_the_table(path: str, source: str) -> list[str]:
    """Return where the module at `path` (relative to the repository) with `source`
    keeps a fact about a notice kind of its own, as "path:line: what" lines.

    An offence: a string equal to a kind's value; a dict, set, list or tuple holding a
    kind (a table of kinds); a comparison with a kind or a `case` on one (a branch on a
    kind); a kind looked up by its member name. Passing a kind on (as the policy does
    with `Action.send(NoticeKind.FINAL)`) is none: that is deciding when it goes out.
    """
    tree = ast.parse(source)
    names = _kind_names(tree)
    found = []
    for node in ast.walk(tree):
        what = None
        if isinstance(node, ast.Constant) and node.value in _VALUES:
            if (path, node.value) not in _OTHER_MEANINGS:
                what = f"spells the kind {node.value!r}"
        elif isinstance(node, ast.Dict):
            if any(_is_member(n, names) for n in [*node.keys, *node.values] if n is not None):
                what = "keeps a table keyed by or holding a kind"
        elif isinstance(node, ast.Set | ast.List | ast.Tuple):
            if any(_is_member(element, names) for element in node.elts):
                what = "keeps a collection of kinds"
        elif isinstance(node, ast.Compare):
            if any(_is_member(n, names) for n in [node.left, *node.comparators]):
                what = "branches on a kind"
        elif isinstance(node, ast.MatchValue) and _is_member(node.value, names):
            what = "branches on a kind"
        elif isinstance(node, ast.Subscript) and _is_kind(node.value, names):
            what = "looks a kind up by its member name"
        if what is not None:
            found.append(f"{path}:{getattr(node, 'lineno', 0)}: {what}")
    return found


def scan(root: Path) -> list[str]:
    """Return every offence in the package under `root` (see kind_facts_outside_the_table)."""
    found = []
    for module in sorted((root / "daemon").rglob("*.py")):
        path = module.relative_to(root).as_posix()
        if path != _TABLE:
            found += kind_facts_outside_the_table(path, module.read_text(encoding="utf-8"))
    return found


def test_no_module_outside_the_table_keeps_a_fact_about_a_kind() -> None:
    assert scan(_ROOT) == []


_DESK = "daemon/notices/desk.py"


@pytest.mark.parametrize(
    "planted",
    [
        # The tables the kinds' facts used to live in, and branches on one kind.
        "_NUMBERED = (NoticeKind.REMINDER, NoticeKind.REMOVAL_WARNING)",
        "_WITH_DOWNLOAD = frozenset({NoticeKind.SUSPENSION})",
        '_DEADLINES = {NoticeKind.FINAL: "suspend_at"}',
        "_AFTER_PHASE = {Phase.UNSUSPEND: NoticeKind.REACTIVATION}",
        "_DUNNING = [NoticeKind.REMINDER]",
        "def final(kind: NoticeKind) -> bool:\n    return kind is NoticeKind.FINAL",
        "def final(notice: str) -> bool:\n    return notice == NoticeKind.FINAL.value",
        'def final(notice: str) -> bool:\n    return notice == "final"',
        "def final(kind: NoticeKind) -> bool:\n"
        "    match kind:\n"
        "        case NoticeKind.FINAL:\n"
        "            return True\n"
        "    return False",
        'FINAL = NoticeKind["FINAL"]',
        "from daemon.domain.notice_kinds import NoticeKind as Kind\n_GONE = (Kind.DELETION,)",
        "import daemon.domain.notice_kinds as kinds\n_GONE = {kinds.NoticeKind.DELETION}",
    ],
)
def test_the_scan_finds_a_planted_fact_about_a_kind(planted: str) -> None:
    source = (_ROOT / _DESK).read_text(encoding="utf-8") + "\n\n" + planted + "\n"

    found = kind_facts_outside_the_table(_DESK, source)

    assert len(found) == 1, found


def test_sending_a_kind_is_not_a_fact_about_it() -> None:
    source = "from daemon.domain.notice_kinds import NoticeKind\nAction.send(NoticeKind.FINAL)\n"

    assert kind_facts_outside_the_table("daemon/policy/rules.py", source) == []


def test_a_word_with_another_meaning_is_allowed_only_where_it_has_it() -> None:
    assert kind_facts_outside_the_table("daemon/backup/gate.py", 'reason = "deletion"') == []
    assert kind_facts_outside_the_table("daemon/backup/tree.py", 'reason = "deletion"') == [
        "daemon/backup/tree.py:1: spells the kind 'deletion'"
    ]


@pytest.mark.parametrize("kind", list(NoticeKind))
def test_every_kind_has_its_two_templates_and_a_subject(kind: NoticeKind) -> None:
    shipped = _ROOT / _TEMPLATES
    assert (shipped / kind.text_template).is_file()
    assert (shipped / kind.html_template).is_file()
    assert "subject" in create_environment().get_template(kind.text_template).blocks


@pytest.mark.parametrize("kind", list(NoticeKind))
def test_every_kind_fits_the_correspondence_log(kind: NoticeKind) -> None:
    column = Correspondence.__table__.c.notice.type
    assert isinstance(column, String) and column.length is not None
    assert len(kind.value) <= column.length


def test_a_kind_defined_without_its_facts_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = (_ROOT / _TABLE).read_text(encoding="utf-8")
    copy = tmp_path / "notice_kinds_copy.py"
    copy.write_text(_with_member(source, '    EXTRA = "extra"\n'), encoding="utf-8")
    spec = importlib.util.spec_from_file_location("notice_kinds_copy", copy)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up

    with pytest.raises(TypeError, match="'extra' is defined without its NoticeFacts"):
        spec.loader.exec_module(module)


def _with_member(table_source: str, member: str) -> str:
    """Return the table's source with `member` added after the last member."""
    anchor = "\n    @property\n    def text_template"
    assert table_source.count(anchor) == 1
    return table_source.replace(anchor, "\n" + member + anchor)


# A kind with every fact set, as a contributor would add it: its entry and two templates.
_SCRATCH_ENTRY = """\
    BACKUP_COPY = (
        "backup-copy",
        NoticeFacts(
            deadline="delete_at",
            asks_for_money=True,
            offers_download=True,
            after=AfterAct(Phase.SUSPEND, SUSPENDED_STATES),
        ),
    )
"""
_SCRATCH_TEXT = """\
{% extends "base.txt" %}
{% block subject %}A copy of {{ account_id }} is kept for you{% endblock %}
{% block body %}It is deleted on {{ delete_at | when }}.{% endblock %}
"""
_SCRATCH_HTML = """\
{% extends "base.html" %}
{% block content %}<p>It is deleted on {{ delete_at | when }}.</p>{% endblock %}
"""
# Run in the copy: what each room makes of the new kind, as JSON.
_SCRATCH_PROBE = """
import json
from datetime import UTC, datetime
from decimal import Decimal

import daemon
from daemon.cli.notices import preview
from daemon.config.schema import BrandConfig, PolicyConfig
from daemon.domain.notice_kinds import NoticeKind
from daemon.domain.snapshot import AccountSnapshot, Contact
from daemon.domain.states import State
from daemon.lifecycle.after_acts import deferred_to, notices_after
from daemon.notices.compose import compose
from daemon.notices.request import NoticeRequest
from daemon.notices.templates import create_environment
from daemon.policy.model import Action, LifecycleRecord
from daemon.domain.phases import Phase
from daemon.reports.payments import DUNNING_NOTICES

kind = NoticeKind("backup-copy")
now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
snapshot = AccountSnapshot(
    "acme", "default", Contact("Ada", "ada@example.org", "UTC"), Decimal("10.00"), "EUR"
)
record = LifecycleRecord("acme", state=State.SUSPENDED, delete_at=now)
brand = BrandConfig(company_name="Example", sender="billing@example.com")
message = compose(
    NoticeRequest(kind, 0, snapshot, record, PolicyConfig(), now), brand, create_environment()
).message()
try:
    NoticeRequest(kind, 0, snapshot, LifecycleRecord("acme"), PolicyConfig(), now)
    refused = None
except ValueError as error:
    refused = str(error)
print(json.dumps({
    "package": daemon.__file__,
    "subject": message["Subject"],
    "header": message["X-Lapse-Notice"],
    "without_deadline": refused,
    "preview_choices": list(next(p for p in preview.params if p.name == "kind").type.choices),
    "reported": [str(k) for k in DUNNING_NOTICES],
    "after_suspend": [str(k) for k in notices_after("suspend", State.SUSPENDED)],
    "deferred": [str(k) for k in deferred_to([Action.run(Phase.SUSPEND), Action.send(kind)])],
}))
"""


def test_a_new_kind_needs_only_its_entry_and_its_two_templates(tmp_path: Path) -> None:
    shutil.copytree(
        _ROOT / "daemon", tmp_path / "daemon", ignore=shutil.ignore_patterns("__pycache__")
    )
    table = tmp_path / _TABLE
    table.write_text(_with_member(table.read_text(encoding="utf-8"), _SCRATCH_ENTRY))
    (tmp_path / _TEMPLATES / "backup-copy.txt").write_text(_SCRATCH_TEXT, encoding="utf-8")
    (tmp_path / _TEMPLATES / "backup-copy.html").write_text(_SCRATCH_HTML, encoding="utf-8")

    run = subprocess.run(
        [sys.executable, "-c", _SCRATCH_PROBE],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )

    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout)
    assert seen["package"] == str(tmp_path / "daemon" / "__init__.py")
    assert seen["subject"] == "A copy of acme is kept for you"
    assert seen["header"] == "backup-copy"
    assert seen["without_deadline"] == "a backup-copy notice needs record.delete_at"
    assert "backup-copy" in seen["preview_choices"]
    # After the kinds already there, whichever they are: a kind added later keeps this test.
    assert seen["reported"] == [*_values(lambda facts: facts.asks_for_money), "backup-copy"]
    assert seen["after_suspend"] == [*_values(_states_the_suspension), "backup-copy"]
    assert seen["deferred"] == ["backup-copy"]
    assert scan(tmp_path) == []


def _values(holds: Callable[[NoticeFacts], bool]) -> list[str]:
    """Return the values of the kinds whose facts `holds`, in lifecycle order."""
    return [kind.value for kind in NoticeKind if holds(kind.facts)]


def _states_the_suspension(facts: NoticeFacts) -> bool:
    """Whether a notice goes out once the suspend phase finished with the account suspended."""
    after = facts.after
    return after is not None and after.phase is Phase.SUSPEND and State.SUSPENDED in after.states
