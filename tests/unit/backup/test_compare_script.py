"""The after-restore comparison runs GNU tar --compare on the restored tree."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from daemon.backup.commands import files_compare_script


@pytest.fixture
def archive(tmp_path: Path) -> tuple[Path, bytes]:
    """A small site, its zstd-compressed tar, and the site extracted into `restored`."""
    site = tmp_path / "site"
    (site / "css").mkdir(parents=True)
    (site / "index.html").write_text("<p>hello</p>\n")
    (site / "css" / "main.css").write_text("p{}\n")
    (site / "latest").symlink_to("index.html")
    data = subprocess.run(
        ["bash", "-o", "pipefail", "-c", "tar -cf - -C site . | zstd -q -c"],
        cwd=tmp_path,
        capture_output=True,
        check=True,
    ).stdout
    restored = tmp_path / "restored"
    restored.mkdir()
    subprocess.run(
        ["bash", "-c", "zstd -q -d -c | tar -xf - --preserve-permissions --numeric-owner"],
        input=data,
        cwd=restored,
        check=True,
    )
    return restored, data


def _compare(target: Path, data: bytes) -> subprocess.CompletedProcess[bytes]:
    script = files_compare_script(str(target), "zstd")
    return subprocess.run(["bash", "-o", "pipefail", "-c", script], input=data, capture_output=True)


def test_an_identical_tree_passes(archive: tuple[Path, bytes]) -> None:
    restored, data = archive
    result = _compare(restored, data)
    assert result.returncode == 0, result.stdout
    assert result.stdout == b""


def test_changed_missing_and_relinked_files_are_named(archive: tuple[Path, bytes]) -> None:
    restored, data = archive
    (restored / "index.html").write_text("<p>HELLO</p>\n")  # same size, other content
    (restored / "css" / "main.css").unlink()
    (restored / "latest").unlink()
    os.symlink("elsewhere.html", restored / "latest")

    result = _compare(restored, data)

    assert result.returncode == 1
    report = result.stdout.decode()
    assert "./index.html: Contents differ" in report
    assert "./css/main.css" in report and "No such file" in report
    assert "./latest: Symlink differs" in report
