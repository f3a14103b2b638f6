"""The tar walker reads every member as tarfile does: names, kinds, sizes and content,
in each format GNU tar writes, and fails where tarfile fails."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import blake3
import pytest

from daemon.backup import tar_walk

Seen = dict[str, tuple[object, ...]]


def _by_tarfile(data: bytes, new_digest: tar_walk.NewDigest = hashlib.sha256) -> Seen:
    seen: Seen = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as archive:
        for member in archive:
            digest = None
            if member.isreg():
                content = archive.extractfile(member)
                assert content is not None
                hasher = new_digest()
                hasher.update(content.read())
                digest = hasher.hexdigest()
            seen[member.name] = _fields(member, digest)
    return seen


def _by_walker(data: bytes, new_digest: tar_walk.NewDigest = hashlib.sha256) -> Seen:
    seen: Seen = {}

    def visit(member: tarfile.TarInfo, digest: Callable[[], str]) -> None:
        seen[member.name] = _fields(member, digest() if member.isreg() else None)

    tar_walk.walk(io.BytesIO(data), visit, new_digest)
    return seen


def _fields(member: tarfile.TarInfo, digest: str | None) -> tuple[object, ...]:
    return (
        member.type,
        member.mode,
        member.uid,
        member.mtime,
        member.size,
        member.linkname,
        digest,
    )


def _outcome(read: Callable[[bytes], Seen], data: bytes) -> object:
    try:
        return read(data)
    except (tarfile.TarError, EOFError) as error:
        return type(error)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Long names and link targets, a hard link, a sparse file, a file over a piece."""
    root = tmp_path_factory.mktemp("tree")
    (root / ("a" * 150)).write_bytes(b"x" * 1000)
    (root / "sub").mkdir()
    (root / "sub" / ("b" * 120)).write_bytes(os.urandom(200_000))
    os.symlink("a" * 150, root / ("l" * 130))
    os.link(root / ("a" * 150), root / "hard")
    with open(root / "sparse", "wb") as sparse:
        sparse.seek(3 << 20)
        sparse.write(b"end")
    (root / "empty").write_bytes(b"")
    (root / ("d" * 110)).mkdir()
    return root


@pytest.mark.parametrize(
    "options",
    [
        ["--format=gnu"],
        ["--format=posix"],
        ["--format=posix", "--sparse"],
        ["--format=gnu", "--sparse"],
        ["--format=ustar"],
    ],
)
def test_the_walker_reads_what_tarfile_reads(tree: Path, options: list[str]) -> None:
    data = subprocess.run(
        ["tar", "--create", "--file=-", *options, "-C", str(tree), "."],
        capture_output=True,
        check=False,
    ).stdout
    expected = _by_tarfile(data)
    assert len(expected) >= 5
    assert _by_walker(data) == expected
    # Cut short or with a byte changed anywhere in the headers: the same result or error.
    for cut in range(0, min(len(data), 12_000), 131):
        damaged = data[:cut] + bytes([(data[cut] + 1) % 256]) + data[cut + 1 :]
        for case in (data[:cut], damaged):
            assert _outcome(_by_walker, case) == _outcome(_by_tarfile, case), (options, cut)


@pytest.mark.parametrize("options", [["--format=gnu"], ["--format=posix", "--sparse"]])
def test_the_walker_digests_with_the_digest_it_is_given(tree: Path, options: list[str]) -> None:
    """BLAKE3, as a host with b3sum announces it: in the walker's own reading and in
    tarfile's, which takes over at a sparse member."""
    data = subprocess.run(
        ["tar", "--create", "--file=-", *options, "-C", str(tree), "."],
        capture_output=True,
        check=False,
    ).stdout
    walked = _by_walker(data, blake3.blake3)
    assert walked == _by_tarfile(data, blake3.blake3)
    assert walked != _by_walker(data, hashlib.sha256)


def test_an_empty_stream_is_no_archive() -> None:
    with pytest.raises(tarfile.ReadError):
        tar_walk.walk(io.BytesIO(b""), lambda member, digest: None, hashlib.sha256)
