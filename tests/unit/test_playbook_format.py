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


def test_a_key_of_another_step_type_is_refused_naming_the_step(tmp_path: Path) -> None:
    """Each step type takes only its own keys: a `url` on a `run` step is not ignored."""
    path = tmp_path / "mine.toml"
    path.write_text(
        "\n".join(
            [
                "[[suspend]]",
                'name = "Lock the user"',
                'type = "run"',
                'command = "usermod --lock {{ service.system_user }}"',
                'url = "https://panel.example/lock"',
                "[[verify]]",
                'name = "Page served"',
                'type = "check"',
                'url = "http://localhost/"',
                'method = "POST"',
                "[[verify]]",
                'name = "Odd one"',
                'type = "notify"',
                'to = "ops"',
                'message = "hello"',
                'colour = "red"',
            ]
        )
    )
    with pytest.raises(ConfigError) as caught:
        load_playbook(path)
    assert caught.value.problems == [
        f"{path}: at 'suspend[0].url': unknown option in the 'run' step 'Lock the user': "
        "'url' belongs to 'http' and 'check' steps",
        f"{path}: at 'verify[0].method': unknown option in the 'check' step 'Page served': "
        "'method' belongs to 'http' steps",
        f"{path}: at 'verify[1].colour': unknown option in the 'notify' step 'Odd one'",
    ]


def test_each_step_type_checks_its_own_keys(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(
        "\n".join(
            [
                "[[suspend]]",
                'name = "page"',
                'type = "put_file"',
                'path = "/srv/page.html"',
                "[[suspend]]",
                'name = "panel"',
                'type = "http"',
                'url = "https://panel.example/"',
                "json = { a = 1 }",
                'form = { b = "2" }',
                "[[suspend]]",
                'name = "tell"',
                'type = "notify"',
                'to = "ops"',
                "[[suspend]]",
                'name = "typeless"',
            ]
        )
    )
    with pytest.raises(ConfigError) as caught:
        load_playbook(path)
    assert caught.value.problems == [
        f"{path}: at 'suspend[0]': a 'put_file' step needs exactly one of 'template' or 'content'",
        f"{path}: at 'suspend[1]': an 'http' step sends 'json' or 'form', not both",
        f"{path}: at 'suspend[2]': a 'notify' step needs 'message'",
        f"{path}: at 'suspend[3].type': missing required option",
    ]


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
