"""The extract script's digests, run here with bash: BLAKE3 from b3sum where present,
else SHA-256 from openssl where present and sha256sum otherwise (and for names openssl
would escape). The script announces which before it reads the archive, and every
file's digest is its content's, as the daemon computes it from the archive with the
announced digest, whatever bytes its name holds."""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import NamedTuple

import blake3
import pytest

from daemon.backup import tar_walk
from daemon.backup.restore_listing import DIGESTS, ListingError, announced_digest, parse_listing
from daemon.backup.staging import extract_script, staged_target

_FILES = {
    "plain.txt": b"plain\n",
    "line\nbreak.txt": b"a newline in the name\n",
    "back\\slash.txt": b"a backslash in the name\n",
    "both\\n.txt": b"a backslash then n\n",
    " leading space": b"a space first\n",
    "tab\tin\tname.txt": b"tabs in the name, which the size-sorted file lists use as a separator\n",
    # Not UTF-8 (Latin-1 e-acute): b3sum would print it altered.
    "caf\udce9.txt": b"a name that is not UTF-8\n",
    "dir/nested.bin": bytes(range(256)) * 64,
    "empty": b"",
}


def _expected(new_digest: tar_walk.NewDigest) -> dict[bytes, str]:
    digests = {}
    for name, content in _FILES.items():
        hasher = new_digest()
        hasher.update(content)
        digests[name.encode("utf-8", "surrogateescape")] = hasher.hexdigest()
    return digests


def _archive() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(
        fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT, errors="surrogateescape"
    ) as archive:
        directory = tarfile.TarInfo("dir")
        directory.type, directory.mode = tarfile.DIRTYPE, 0o755
        archive.addfile(directory)
        for name, content in _FILES.items():
            member = tarfile.TarInfo(name)
            member.size, member.mode = len(content), 0o644
            archive.addfile(member, io.BytesIO(content))
    return buffer.getvalue()


class _Run(NamedTuple):
    """What the extract script announced, each file's digest in its listing, its status."""

    digest: bytes
    found: dict[bytes, str]
    status: int


def _run(tmp_path: Path, *plants: tuple[str, str]) -> _Run:
    """Run the extract script on the archive (its listing read only when it exited 0).
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
    announcement, _, listing = done.stdout.partition(b"\0")
    name = announcement.removeprefix(b"lapse-digest ")
    assert announced_digest(announcement) is DIGESTS[name]
    if done.returncode != 0:
        # The daemon reads no listing of a script that failed (daemon.backup.restore).
        return _Run(name, {}, done.returncode)
    _, tree = parse_listing(listing)
    found = {path: entry.digest for path, entry in tree.items() if entry.kind == "f"}
    return _Run(name, found, done.returncode)


# A host without b3sum, and one without openssl either.
_NO_B3SUM = ("command -v b3sum", "command -v lapse-no-such-b3sum")
_NO_OPENSSL = ("command -v openssl", "command -v lapse-no-such-openssl")


def test_every_file_gets_its_contents_blake3_where_the_host_has_b3sum(tmp_path: Path) -> None:
    assert _run(tmp_path) == (b"blake3", _expected(blake3.blake3), 0)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl on PATH")
@pytest.mark.parametrize("openssl", [True, False], ids=["openssl", "sha256sum"])
def test_every_file_gets_its_contents_sha256_on_a_host_without_b3sum(
    tmp_path: Path, openssl: bool
) -> None:
    # A host without openssl: the same script falls back to sha256sum for every file.
    plants = [_NO_B3SUM] if openssl else [_NO_B3SUM, _NO_OPENSSL]
    assert _run(tmp_path, *plants) == (b"sha256", _expected(hashlib.sha256), 0)


def test_a_file_openssl_skipped_has_no_digest(tmp_path: Path) -> None:
    """A digest a tool failed to print leaves the file's digest empty: the compare
    then finds its content differing from the archive's."""
    skipping = ("xargs -0 -r openssl", "grep -zv plain | xargs -0 -r openssl")
    found = _run(tmp_path, _NO_B3SUM, skipping).found
    assert found[b"plain.txt"] == ""
    assert found[b"empty"] == hashlib.sha256(b"").hexdigest()


@pytest.mark.parametrize(
    "failing",
    [
        # One digest missing from b3sum's lines: they no longer pair with the names.
        (
            'xargs -0 -r b3sum --no-names -- <"$LIST"',
            'xargs -0 -r b3sum --no-names -- <"$LIST" | sed 1d',
        ),
        # b3sum failing for one file (a name of the newline list made to name nothing).
        (
            'xargs -0 -r b3sum --no-names -- <"$LIST"',
            'sed -z "s/line/gone/" "$LIST" | xargs -0 -r b3sum --no-names --',
        ),
    ],
    ids=["a-digest-short", "b3sum-fails"],
)
def test_digests_not_one_for_each_name_make_the_status_non_zero(
    tmp_path: Path, failing: tuple[str, str]
) -> None:
    """b3sum's digests are put before the names by their order: when they are not as
    many as the names, the script fails, which fails the restore before any compare."""
    assert _run(tmp_path / "failing", failing).status != 0
    assert _run(tmp_path / "as-shipped").status == 0


def test_the_digest_processes_run_side_by_side(tmp_path: Path) -> None:
    """Two lists, two digest processes at once: each waits (up to 5 s) for the other to
    have started before it digests, and notes whether it saw it. Run one after the
    other, each would wait alone."""
    seen = tmp_path / "seen"
    started = (
        '{ touch "$list.go"; for _ in $(seq 100); do set -- "$digests"/*.go; '
        "[ $# -ge 2 ] && break; sleep 0.05; done; "
        f"if [ $# -ge 2 ]; then echo together; else echo alone; fi >>{seen}; "
        'LIST="$list" FILE="$list.sha" bash --norc -o pipefail -c "$quick" <"$list"; } &'
    )
    run = _run(
        tmp_path,
        ("parts=$(nproc 2>/dev/null || echo 1)", "parts=2"),
        ('LIST="$list" FILE="$list.sha" bash --norc -o pipefail -c "$quick" <"$list" &', started),
    )
    assert seen.read_text().split() == ["together", "together"]
    assert run == (b"blake3", _expected(blake3.blake3), 0)


@pytest.mark.parametrize(
    "announcement",
    [b"lapse-digest md5", b"lapse-digest", b"lapse-uid 0", b"", b"lapse-digest blake3 "],
)
def test_an_announcement_of_no_known_digest_is_refused(announcement: bytes) -> None:
    with pytest.raises(ListingError, match="announced no known digest"):
        announced_digest(announcement)
