"""The playbook format: validation errors that name file and key, and safe templating."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from daemon.config.load import ConfigError
from daemon.playbooks.library import PlaybookLibrary, load_playbook
from daemon.playbooks.templating import TemplateError, evaluate, render_command


def test_errors_name_the_file_and_the_key_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(
        "\n".join(
            [
                "[[suspend]]",
                'name = "ok"',
                'type = "backup"',
                "[[suspend]]",
                'name = "no command"',
                'type = "run"',
                "[[delete]]",
                'name = "typo"',
                'type = "run"',
                'comand = "rm -rf x"',
                "[[verify]]",
                'name = "unknown type"',
                'type = "ftp"',
            ]
        )
    )
    with pytest.raises(ConfigError) as caught:
        load_playbook(path)
    problems = caught.value.problems
    assert f"{path}: at 'suspend[1]': a 'run' step needs 'command'" in problems
    assert any(p.startswith(f"{path}: at 'delete[0].comand': unknown option") for p in problems)
    assert any(p.startswith(f"{path}: at 'verify[0].type': expected one of") for p in problems)


def test_operator_playbooks_come_first(tmp_path: Path) -> None:
    (tmp_path / "nginx-linux.toml").write_text('description = "ours"\n')
    library = PlaybookLibrary(tmp_path)
    assert library.get("nginx-linux").description == "ours"
    with pytest.raises(ConfigError, match="playbook 'nope' not found"):
        library.get("nope")


def test_every_value_in_a_command_is_one_shell_word() -> None:
    hostile = "/srv/www/x'; touch /tmp/pwned #"
    command = render_command(
        "printf '%s\\n' {{ path }} {{ names }} {{ n | raw }}",
        {"path": hostile, "names": ["a b", "$(id)"], "n": "--"},
        "test step",
    )
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines() == [hostile, "a b", "$(id)", "--"]


def test_unknown_names_and_bad_expressions_are_errors() -> None:
    with pytest.raises(TemplateError, match="step x"):
        render_command("echo {{ service.docrot }}", {"service": {"docroot": "/a"}}, "step x")
    assert evaluate("service.domains", {"service": {"domains": ["a"]}}, "s")
    assert not evaluate("service.domains", {"service": {"domains": []}}, "s")
    with pytest.raises(TemplateError, match="when"):
        evaluate("service.(", {"service": {}}, "s")
