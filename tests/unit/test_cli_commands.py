"""The `lapse` group finds every command in its own module, loading only that module."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import click

import daemon.cli
from daemon.cli.main import cli, load_command


def _every_command() -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}
    for module in pkgutil.iter_modules(daemon.cli.__path__):
        commands = getattr(importlib.import_module(f"daemon.cli.{module.name}"), "COMMANDS", ())
        for command in commands:
            assert command.name not in found, f"two commands called {command.name}"
            found[str(command.name)] = command
    return found


def test_every_command_of_every_module_is_reachable_by_name() -> None:
    every = _every_command()
    assert sorted(every) == cli.list_commands(click.Context(cli))
    for name, command in every.items():
        assert load_command(name) is command


def test_an_unknown_command_is_refused_by_name() -> None:
    lapse = str(Path(sys.executable).with_name("lapse"))
    result = subprocess.run([lapse, "no-such-command"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "No such command 'no-such-command'" in result.stderr


def test_a_backup_command_loads_neither_the_daemon_nor_alembic() -> None:
    script = (
        "import sys\n"
        "from daemon.cli.main import load_command\n"
        "load_command('backup')\n"
        "print(sorted(m for m in ('apscheduler', 'prometheus_client', 'alembic',"
        " 'daemon.runtime.service') if m in sys.modules))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]"


def test_a_backup_with_file_billing_loads_no_http_client(tmp_path: Path) -> None:
    # Only a configured HTTP billing source, an `http` or `check` step that runs, or a
    # webhook alert that goes out needs httpx: 3 MB that `lapse backup` must not carry.
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from daemon.runtime.app import build_app\n"
        "from daemon.config import load_embedded_config\n"
        "from daemon.cli.main import load_command\n"
        "load_command('backup')\n"
        f"app = build_app(load_embedded_config(Path({str(tmp_path)!r})))\n"
        "print(type(app.billing).__name__, 'httpx' in sys.modules)\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "FileSource False"
