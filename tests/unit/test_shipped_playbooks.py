"""Every shipped playbook: it loads, every command it can run is valid bash, and hostile
values from billing stay single shell words."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from daemon.billing.snapshot import Database, Service
from daemon.config.schema import BrandConfig, HostConfig
from daemon.playbooks.library import load_playbook
from daemon.playbooks.runner import step_variables
from daemon.playbooks.schema import Playbook
from daemon.playbooks.templating import render_command, render_text

SHIPPED = sorted((Path(__file__).resolve().parents[2] / "playbooks").glob("*.toml"))
PHASES = ("suspend", "unsuspend", "delete", "restore", "verify")
# What billing may hand over when it is compromised or careless. The names Lapse
# validates before any command runs; these reach the templates anyway, so quoting is
# the last line of defence.
HOSTILE = "x'; rm -rf / #$(reboot)`id`\nnext"


def _variables(playbook: Playbook, docroot: str, domain: str, phase: str) -> dict[str, object]:
    playbook_name = "nginx-linux"  # any name: only the playbook's own vars matter here
    service = Service(
        host="web1",
        system_user="acme",
        docroot=docroot,
        domains=(domain, "www." + domain),
        databases=(
            Database("mariadb", "acme_shop", "acme"),
            Database("postgresql", "blog", "acme"),
        ),
    )
    host = HostConfig.model_validate(
        {"transport": "local", "playbook": playbook_name, "allowed_roots": ["/srv/www"]}
    )
    return step_variables("acct-1", service, host, playbook, BrandConfig(), phase)


def _commands(playbook: Playbook, variables: dict[str, object]) -> list[tuple[str, str]]:
    """(where, rendered command) for every run step and every undo of each phase."""
    rendered = []
    for phase in PHASES:
        for spec in playbook.steps(phase):
            candidates = [("undo", spec.undo)]
            if spec.type == "run":
                candidates.append(("command", spec.command))
            for label, template in candidates:
                if isinstance(template, str):
                    where = f"{phase}: {spec.name} ({label})"
                    rendered.append((where, render_command(template, variables, where)))
    return rendered


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_command_renders_to_valid_bash(path: Path) -> None:
    playbook = load_playbook(path)
    variables = _variables(playbook, "/srv/www/example.org", "example.org", "suspend")
    commands = _commands(playbook, variables)
    assert commands, f"{path.name} runs no command"
    for where, command in commands:
        check = subprocess.run(["bash", "-n", "-c", command], capture_output=True, text=True)
        assert check.returncode == 0, f"{path.name} {where}: {check.stderr}"


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_file_templates_render(path: Path) -> None:
    playbook = load_playbook(path)
    variables = _variables(playbook, "/srv/www/example.org", "example.org", "restore")
    for phase in PHASES:
        for spec in playbook.steps(phase):
            if spec.type == "put_file" and spec.content:
                text = render_text(spec.content, variables, spec.name)
                assert "example.org" in text and "{{" not in text


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_hostile_values_stay_one_quoted_word(path: Path) -> None:
    playbook = load_playbook(path)
    variables = _variables(playbook, "/srv/www/" + HOSTILE, HOSTILE, "suspend")
    for where, command in _commands(playbook, variables):
        # Every place the value appears, it is inside single quotes as one token.
        quoted = shlex.quote("/srv/www/" + HOSTILE)
        bare_docroot = command.replace(quoted, "").replace(shlex.quote(HOSTILE), "")
        assert "rm -rf / #" not in bare_docroot, f"{path.name} {where} left a value unquoted"
        assert "$(reboot)" not in bare_docroot, f"{path.name} {where} left a value unquoted"
        check = subprocess.run(["bash", "-n", "-c", command], capture_output=True, text=True)
        assert check.returncode == 0, f"{path.name} {where}: {check.stderr}"
