"""The extract script's digests, run here with bash: openssl where present, sha256sum
otherwise and for names openssl would escape; every file's digest is its content's
SHA-256, as the daemon computes it from the archive."""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from daemon.backup.restore_listing import parse_listing
from daemon.backup.staging import extract_script, staged_target

_FILES = {
    "plain.txt": b"plain\n",
    "line\nbreak.txt": b"a newline in the name\n",
    "back\\slash.txt": b"a backslash in the name\n",
    "both\\n.txt": b"a backslash then n\n",
    " leading space": b"a space first\n",
    "tab\tin\tname.txt": b"tabs in the name, which the size-sorted file lists use as a separator\n",
    "dir/nested.bin": bytes(range(256)) * 64,
    "empty": b"",
}


def _archive() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        directory = tarfile.TarInfo("dir")
        directory.type, directory.mode = tarfile.DIRTYPE, 0o755
        archive.addfile(directory)
        for name, content in _FILES.items():
            member = tarfile.TarInfo(name)
            member.size, member.mode = len(content), 0o644
            archive.addfile(member, io.BytesIO(content))
    return buffer.getvalue()


def _run(tmp_path: Path, *plants: tuple[str, str]) -> dict[bytes, str]:
    """Run the extract script on the archive; return each file's digest from its listing.
    Each of `plants` is a (text, replacement) pair applied to the script first."""
    root = tmp_path / "www"
    (root / "site").mkdir(parents=True)
    script = extract_script(staged_target(str(root / "site"), [str(root)]), "none")
    for plant in plants:
        assert plant[0] in script
        script = script.replace(*plant)
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", script],
        input=_archive(),
        capture_output=True,
        check=False,
    )
    _, tree = parse_listing(done.stdout)
    return {name: entry.digest for name, entry in tree.items() if entry.kind == "f"}


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl on PATH")
@pytest.mark.parametrize("openssl", [True, False], ids=["openssl", "sha256sum"])
def test_every_file_gets_its_contents_sha256(tmp_path: Path, openssl: bool) -> None:
    # A host without openssl: the same script falls back to sha256sum for every file.
    plants = [] if openssl else [("command -v openssl", "command -v lapse-no-such-openssl")]
    assert _run(tmp_path, *plants) == {
        name.encode(): hashlib.sha256(content).hexdigest() for name, content in _FILES.items()
    }


def test_a_file_the_digest_tool_skipped_has_no_digest(tmp_path: Path) -> None:
    """A digest a tool failed to print leaves the file's digest empty: the compare
    then finds its content differing from the archive's."""
    found = _run(tmp_path, ("xargs -0 -r openssl", "grep -zv plain | xargs -0 -r openssl"))
    assert found[b"plain.txt"] == ""
    assert found[b"empty"] == hashlib.sha256(b"").hexdigest()


def test_the_digest_processes_run_side_by_side(tmp_path: Path) -> None:
    """Two lists, two digest processes at once: each waits (up to 5 s) for the other to
    have started before it digests, and notes whether it saw it. Run one after the
    other, each would wait alone."""
    seen = tmp_path / "seen"
    started = (
        '{ touch "$list.go"; for _ in $(seq 100); do set -- "$digests"/*.go; '
        "[ $# -ge 2 ] && break; sleep 0.05; done; "
        f"if [ $# -ge 2 ]; then echo together; else echo alone; fi >>{seen}; "
        'FILE="$list.sha" bash -o pipefail -c "$quick" <"$list"; } &'
    )
    found = _run(
        tmp_path,
        ("parts=$(nproc 2>/dev/null || echo 1)", "parts=2"),
        ('FILE="$list.sha" bash -o pipefail -c "$quick" <"$list" &', started),
    )
    assert seen.read_text().split() == ["together", "together"]
    assert found == {
        name.encode(): hashlib.sha256(content).hexdigest() for name, content in _FILES.items()
    }
