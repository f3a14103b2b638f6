"""No pydantic plugin runs inside `lapse` unless the operator turns plugins on.

pydantic calls every plugin an installed package declares (entry point group
"pydantic") inside each validation, the config's secrets included, and finds them by
reading every installed distribution's metadata at the first validation.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.e2e.daemon_process import lapse, local_config

_PLUGIN = """
from pathlib import Path
Path({marker!r}).write_text("loaded")


class _Plugin:
    def new_schema_validator(self, *args, **kwargs):
        return None, None, None


plugin = _Plugin()
"""


def _installed_plugin(tmp_path: Path) -> tuple[Path, Path]:
    """Install a pydantic plugin in a directory of its own that writes a marker when it is
    loaded; return (the directory, for PYTHONPATH; the marker)."""
    site = tmp_path / "site"
    info = site / "lapse_spy_plugin-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lapse-spy-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[pydantic]\nspy = lapse_spy_plugin:plugin\n")
    marker = tmp_path / "plugin-loaded"
    (site / "lapse_spy_plugin.py").write_text(_PLUGIN.format(marker=str(marker)))
    return site, marker


@pytest.mark.parametrize(("setting", "loaded"), [(None, False), ("", True)])
def test_an_installed_pydantic_plugin_is_not_loaded_unless_asked_for(
    tmp_path: Path, setting: str | None, loaded: bool
) -> None:
    """By default the plugin never loads; with PYDANTIC_DISABLE_PLUGINS set (empty: every
    plugin on) the operator's choice stands, and the same plugin does load, which shows
    the marker would tell."""
    site, marker = _installed_plugin(tmp_path)
    (tmp_path / "billing.json").write_text('{"accounts": []}')
    config = local_config(tmp_path, tmp_path / "www")
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("PYDANTIC_DISABLE_PLUGINS", None)
    if setting is not None:
        env["PYDANTIC_DISABLE_PLUGINS"] = setting
    checked = lapse("check-config", "-c", str(config), env=env)
    assert checked.returncode == 0, checked.stderr
    assert marker.exists() is loaded
