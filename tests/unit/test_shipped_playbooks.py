"""Every shipped playbook: it loads, every command it can run is valid bash, its files
render, and hostile values from billing stay single shell words that never run.

The playbooks are collected by glob, so a new file in playbooks/ is covered without
touching this module. Steps are rendered by the step types themselves (RunStep,
PutFileStep) with the context the runner builds (`step_variables`), so what is checked
here is what a host would receive.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest

from daemon.backup.panel_archive import PanelArchive, make_script, place_script
from daemon.config.schema import BrandConfig, HostConfig
from daemon.domain.phases import PLAYBOOK_PHASES
from daemon.domain.snapshot import Database, Service
from daemon.playbooks.contexts import step_variables
from daemon.playbooks.library import load_playbook
from daemon.playbooks.pages import MaintenancePages
from daemon.playbooks.schema import Playbook, StepSpec
from daemon.playbooks.steps import STEP_TYPES, StepContext
from daemon.playbooks.steps.specs import BackupSpec, RestoreSpec
from daemon.playbooks.templating import render_command
from daemon.transport import CommandResult, RemoteProcess, Transport

BASH = shutil.which("bash") or "/bin/bash"
SHIPPED = sorted((Path(__file__).resolve().parents[2] / "playbooks").glob("*.toml"))
IDS = [path.stem for path in SHIPPED]

DOCROOT = "/srv/www/example.org"
DOMAIN = "example.org"
# Billing checks names before any command runs, but a docroot may hold quotes, '$',
# backticks and spaces (only control characters are refused): quoting is what keeps
# them inert. The newline goes beyond what billing lets through.
HOSTILE = "x'; rm -rf / #$(reboot) `id` a  b\nnext"
# Names a command that must never be looked up: seeing it run means a value was
# interpreted by the shell instead of being passed as data.
CANARY = "lapse_injected"
INJECTIONS = {
    "docroot": f"/srv/www/it's $({CANARY}) `{CANARY}` '; {CANARY} #\nnext",
    # A domain cannot hold '/', so this one names a file a vhost can have.
    "domain": f"ex$({CANARY})`{CANARY}`'; {CANARY} #.org",
}


class RecordingTransport(Transport):
    """Accepts every script and keeps it with its stdin, running nothing."""

    name = "web1"

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes]] = []

    def run(self, script: str, label: str, stdin: bytes = b"", check: bool = True) -> CommandResult:
        self.calls.append((script, stdin))
        return CommandResult(0, b"", "")

    def _spawn(self, script: str, label: str) -> RemoteProcess:
        raise AssertionError("nothing is started on a recording transport")

    def _release(self) -> None:
        pass

    def close(self) -> None:
        pass


def _service(docroot: str = DOCROOT, domain: str = DOMAIN) -> Service:
    return Service(
        host="web1",
        system_user="acme",
        docroot=docroot,
        domains=(domain, "www.example.org"),
        databases=(
            Database("mariadb", "acme_shop", "acme_shop"),
            Database("postgresql", "acme_blog", "acme_blog"),
        ),
    )


def _context(
    path: Path,
    service: Service,
    phase: str = "suspend",
    vars_: dict[str, str] | None = None,
    allowed_roots: tuple[str, ...] = ("/srv/www",),
) -> tuple[Playbook, StepContext]:
    """The playbook at `path` and the context the runner would give its steps."""
    playbook = load_playbook(path)
    host = HostConfig.model_validate(
        {
            "transport": "local",
            "playbook": path.stem,
            "allowed_roots": list(allowed_roots),
            "vars": vars_ or {},
        }
    )
    brand = BrandConfig.model_validate(
        {"company_name": "Example Hosting", "support_email": "help@example.net"}
    )
    variables = step_variables("acct-1", service, host, playbook, brand, phase)
    context = StepContext(
        account_id="acct-1",
        phase=phase,
        service=service,
        host_name="web1",
        transport=RecordingTransport(),
        variables=variables,
        backups=cast(Any, None),  # no step rendered here touches the backup store
        pages=MaintenancePages(),
        clock=lambda: datetime(2026, 11, 1, tzinfo=UTC),
        since=datetime(2026, 11, 1, tzinfo=UTC),
    )
    return playbook, context


def _command_specs(playbook: Playbook) -> list[tuple[str, StepSpec]]:
    """(where, run spec) for every run step of every phase and every command undo, the
    undo turned into the step the runner would run for it."""
    specs: list[tuple[str, StepSpec]] = []
    for phase in PLAYBOOK_PHASES:
        for spec in playbook.steps(phase):
            if spec.type == "run":
                specs.append((f"{phase}: {spec.name}", spec))
            undo = spec.undo_spec() if spec.undoable else None
            if undo is not None and undo.type == "run":
                specs.append((f"{phase}: {spec.name} (undo)", undo))
    return specs


def _commands(
    playbook: Playbook, context: StepContext, wrapped: bool = False
) -> list[tuple[str, str]]:
    """(where, command as the run step renders it) for every command of the playbook,
    the panel archive commands of its backup and restore steps included (with
    `wrapped`, also as the host runs them, inside the fresh-directory script)."""
    run = STEP_TYPES["run"]
    found = [(where, run.describe(spec, context)) for where, spec in _command_specs(playbook)]
    for phase in PLAYBOOK_PHASES:
        for spec in playbook.steps(phase):
            archive = spec.panel_archive if isinstance(spec, BackupSpec | RestoreSpec) else None
            if archive is None:
                continue
            command = render_command(archive.command, context.variables, spec.name)
            found.append((f"{phase}: {spec.name} (panel archive)", command))
            if wrapped:
                script = (
                    make_script(PanelArchive("web1", command, "x.tar", "tar", "/var/x", "test"))
                    if isinstance(spec, BackupSpec)
                    else place_script("/var/x", "x.tar", 1, "0" * 64, command)
                )
                found.append((f"{phase}: {spec.name} (panel archive, on the host)", script))
    return found


def _bash_syntax(command: str) -> str:
    """bash's complaint about `command`, or "" when it parses."""
    check = subprocess.run(
        ["bash", "-n", "-o", "pipefail", "-c", command], capture_output=True, text=True
    )
    return check.stderr if check.returncode else ""


@pytest.mark.parametrize("path", SHIPPED, ids=IDS)
def test_loads_and_validates(path: Path) -> None:
    playbook = load_playbook(path)
    assert playbook.description, f"{path.name} says nothing about what it is for"
    assert playbook.steps("suspend") and playbook.steps("delete")
    # Suspension must be undoable: something in it says how reactivation reverses it.
    assert any(spec.undoable for spec in playbook.steps("suspend"))


# The playbooks whose verify phase tests/lab/test_verify_phases.py runs against a live,
# not-suspended site and shows failing. A check that cannot fail proves nothing.
VERIFY_SHOWN_FAILING = {
    "demo",
    "nginx-linux",
    "apache-linux",
    "cpanel",
    "hestiacp",
    "plesk",
    "directadmin",
}


def test_every_shipped_verify_phase_is_shown_failing() -> None:
    """A new shipped playbook needs its verify phase run and shown failing in the lab."""
    assert set(IDS) == VERIFY_SHOWN_FAILING


@pytest.mark.parametrize("path", SHIPPED, ids=IDS)
def test_has_a_verify_phase(path: Path) -> None:
    assert load_playbook(path).steps("verify"), f"{path.name} has no verify phase"


@pytest.mark.parametrize("path", SHIPPED, ids=IDS)
def test_every_command_renders_to_valid_bash(path: Path) -> None:
    playbook, context = _context(path, _service())
    commands = _commands(playbook, context, wrapped=True)
    assert commands, f"{path.name} runs no command"
    for where, command in commands:
        assert "{{" not in command and "{%" not in command, f"{path.name} {where}"
        assert not _bash_syntax(command), f"{path.name} {where}: {_bash_syntax(command)}"


@pytest.mark.parametrize("path", SHIPPED, ids=IDS)
def test_file_steps_render(path: Path) -> None:
    for phase in PLAYBOOK_PHASES:
        playbook, context = _context(path, _service(domain="<b>example</b>.org"), phase)
        for spec in playbook.steps(phase):
            if spec.type != "put_file":
                continue
            STEP_TYPES["put_file"].run(spec, context)
            transport = cast(RecordingTransport, context.transport)
            script, content = transport.calls[-1]
            text = content.decode()
            assert "{{" not in text and "{%" not in text, f"{path.name} {spec.name}"
            assert not _bash_syntax(script), f"{path.name} {spec.name}"
            if spec.template is not None:
                # The page shows the site's name, HTML-escaped, and the marker checks look for.
                assert "lapse-maintenance-page" in text
                assert "&lt;b&gt;example&lt;/b&gt;.org" in text and "<b>" not in text
            else:
                assert text.strip(), f"{path.name} {spec.name} writes an empty file"


@pytest.mark.parametrize("field", ["docroot", "domain"])
@pytest.mark.parametrize("path", SHIPPED, ids=IDS)
def test_hostile_values_stay_one_quoted_word(path: Path, field: str) -> None:
    value = "/srv/www/" + HOSTILE if field == "docroot" else HOSTILE
    service = _service(docroot=value) if field == "docroot" else _service(domain=value)
    playbook, context = _context(path, service)
    carried = 0
    for where, command in _commands(playbook, context):
        assert not _bash_syntax(command), f"{path.name} {where}: {_bash_syntax(command)}"
        # Wherever the value is, it is inside the quoting render_command gave it...
        bare = command.replace(shlex.quote(value), "")
        for fragment in ("rm -rf / #", "$(reboot)", "`id`", "a  b\nnext"):
            assert fragment not in bare, f"{path.name} {where} left {fragment!r} unquoted"
        if bare == command:
            continue
        carried += 1
        # ...and a shell lexer reads it back as part of one word, never split.
        words = shlex.split(command, comments=True)
        assert any(value in word for word in words), f"{path.name} {where}"
        split = [w for w in words if "rm -rf" in w or "reboot" in w]
        assert all(value in word for word in split), f"{path.name} {where}: {split}"
    if field == "docroot":
        assert carried, f"{path.name} never passes the docroot to a command"


@pytest.mark.parametrize("path", SHIPPED, ids=IDS)
def test_http_urls_encode_every_value_from_billing(path: Path) -> None:
    """A user name like `a&delete=yes` must stay one query value in a panel API's URL."""
    playbook = load_playbook(path)
    for phase in PLAYBOOK_PHASES:
        for spec in playbook.steps(phase):
            if spec.type != "http":
                continue
            for url in (spec.url, spec.state_url, spec.undo_url):
                if url is None or "?" not in url:
                    continue
                query = url.split("?", 1)[1]
                for value in query.split("{{")[1:]:
                    expression = value.split("}}", 1)[0]
                    assert "urlencode" in expression, f"{path.name} {spec.name}: {url}"


def test_a_hostile_user_name_stays_one_query_value() -> None:
    path = next(p for p in SHIPPED if p.stem == "directadmin")
    service = Service("web1", "a&delete=yes&select0=root", DOCROOT, (DOMAIN,))
    playbook, context = _context(path, service, phase="verify")
    [spec] = [s for s in playbook.steps("verify") if s.type == "http"]
    assert (
        STEP_TYPES["http"]
        .describe(spec, context)
        .endswith("/CMD_API_SHOW_USER_CONFIG?user=a%26delete%3Dyes%26select0%3Droot")
    )


def _injection_cases() -> list[Any]:
    return [
        pytest.param(path, field, id=f"{path.stem}-{field}")
        for path in SHIPPED
        for field in INJECTIONS
    ]


# Runs each command with an empty PATH: bash builtins work, every other command goes to
# command_not_found_handle, which records its arguments and reports success. Nothing
# outside the temporary directory is touched (path vars are moved into it).
# Commands of one pipeline run at once, and bash's printf may write one record in
# several writes: each record is appended under a lock, or two would interleave.
# (PATH is empty in the test, hence flock by its full path.)
_RECORDER = """command_not_found_handle() {
  { /usr/bin/flock 9; printf '%s\\0' "$#" "$@" >> "$LAPSE_CALLS"; } 9>>"$LAPSE_CALLS.lock"
}
"""


def _calls(log: Path) -> list[list[str]]:
    """The commands the recorder saw, each as its argument list."""
    fields = log.read_text().split("\0")[:-1] if log.exists() else []
    calls = []
    while fields:
        count = int(fields.pop(0))
        calls.append(fields[:count])
        del fields[:count]
    return calls


@pytest.mark.parametrize(("path", "field"), _injection_cases())
def test_hostile_values_never_run_as_code(path: Path, field: str, tmp_path: Path) -> None:
    value = INJECTIONS[field]
    service = _service(docroot=value) if field == "docroot" else _service(domain=value)
    base, context = _context(path, service)
    # Every absolute path among the vars moves under tmp_path, with the account's vhost
    # in place, so the commands get past their "is there a vhost" checks.
    moved = {
        name: str(tmp_path / setting.lstrip("/"))
        for name, setting in base.vars.items()
        if setting.startswith("/")
    }
    for directory in moved.values():
        Path(directory).mkdir(parents=True, exist_ok=True)
        vhost = service.domains[0] + base.vars.get("vhost_suffix", "")
        (Path(directory) / vhost).write_text("server_name example.org;\n")
    playbook, context = _context(
        path, service, vars_=moved, allowed_roots=(str(tmp_path / "srv/www"), "/srv/www")
    )
    empty = tmp_path / "bin"
    empty.mkdir()
    log = tmp_path / "calls"
    for where, command in _commands(playbook, context):
        subprocess.run(
            [BASH, "-o", "pipefail", "-c", _RECORDER + command],
            env={"PATH": str(empty), "LAPSE_CALLS": str(log)},
            cwd=tmp_path,
            capture_output=True,
            timeout=20,
            check=False,
        )
        calls = _calls(log)
        ran = [call for call in calls if call and CANARY in call[0]]
        assert not ran, f"{path.name} {where}: the {field} ran as code: {ran}"
        split = [arg for call in calls for arg in call if CANARY in arg and value not in arg]
        assert not split, f"{path.name} {where}: the {field} was split: {split}"
