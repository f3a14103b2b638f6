"""Finding and loading playbooks and maintenance pages: the operator's first, then Lapse's."""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic import ValidationError

from daemon.config.load import ConfigError, read_toml
from daemon.playbooks.problems import playbook_problem
from daemon.playbooks.schema import Playbook

_SOURCE_ROOT = Path(__file__).resolve().parents[2]
_SHARE = Path(sys.prefix) / "share" / "lapse"


def shipped_dirs(name: str) -> list[Path]:
    """Where the shipped `name` directory ('playbooks', 'maintenance_pages') may be: the
    source tree (a checkout or editable install) or the installed share directory."""
    return [path for path in (_SOURCE_ROOT / name, _SHARE / name) if path.is_dir()]


class PlaybookLibrary:
    """Loads playbooks by name, the operator's directory first, each validated once."""

    def __init__(self, operator_dir: Path | None = None) -> None:
        self._dirs = ([operator_dir] if operator_dir else []) + shipped_dirs("playbooks")
        self._loaded: dict[str, Playbook] = {}

    @property
    def directories(self) -> list[Path]:
        """The directories searched, in order."""
        return list(self._dirs)

    def path_of(self, name: str) -> Path:
        """Return the file that defines playbook `name`. Raises ConfigError when none does."""
        for directory in self._dirs:
            candidate = directory / f"{name}.toml"
            if candidate.is_file():
                return candidate
        searched = ", ".join(str(d) for d in self._dirs) or "no directory"
        raise ConfigError([f"playbook {name!r} not found (looked in {searched})"])

    def get(self, name: str) -> Playbook:
        """Return playbook `name`, validated. Raises ConfigError naming file and key path."""
        if name not in self._loaded:
            self._loaded[name] = load_playbook(self.path_of(name))
        return self._loaded[name]


def load_playbook(path: Path) -> Playbook:
    """Load and validate the playbook file at `path`.

    Raises ConfigError listing every problem, each naming the file and key path
    and step (e.g. "x.toml: at 'suspend[2]': a 'run' step needs 'command'"; see
    daemon.playbooks.problems).
    """
    raw = read_toml(path)
    try:
        return Playbook.model_validate(raw)
    except ValidationError as error:
        raise ConfigError([playbook_problem(str(path), raw, d) for d in error.errors()]) from None
