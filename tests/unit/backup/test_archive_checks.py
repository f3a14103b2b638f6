"""Which archive members restore refuses, and how an archive is listed."""

from __future__ import annotations

import io
import tarfile

import pytest

from daemon.backup.archive import list_archive


def _tar(*members: tarfile.TarInfo) -> io.BytesIO:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        for member in members:
            data = b"x" * member.size
            archive.addfile(member, io.BytesIO(data) if member.isfile() else None)
    raw.seek(0)
    return raw


def _member(
    name: str, kind: bytes = tarfile.REGTYPE, size: int = 0, link: str = ""
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size if kind == tarfile.REGTYPE else 0
    info.linkname = link
    return info


def test_a_plain_site_is_safe_and_counted() -> None:
    listing = list_archive(
        _tar(
            _member(".", tarfile.DIRTYPE),
            _member("./index.html", size=10),
            _member("./img", tarfile.DIRTYPE),
            _member("./img/logo.png", size=5),
            _member("./current", tarfile.SYMTYPE, link="/etc/hostname"),  # a link, not followed
            _member("./copy.html", tarfile.LNKTYPE, link="./index.html"),
        )
    )
    assert listing.unsafe == []
    assert (listing.files, listing.directories, listing.symlinks, listing.other) == (2, 2, 1, 1)
    assert listing.bytes == 15


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        (_member("/etc/passwd", size=1), "absolute path"),
        (_member("../outside.txt", size=1), "contains '..'"),
        (_member("./a/../../outside.txt", size=1), "contains '..'"),
        (_member("./dev/sda", tarfile.BLKTYPE), "device file"),
        (_member("./dev/tty", tarfile.CHRTYPE), "device file"),
        (_member("./shadow", tarfile.LNKTYPE, link="/etc/shadow"), "hard link"),
        (_member("./up", tarfile.LNKTYPE, link="../secret"), "hard link"),
        (_member("./pipe", tarfile.FIFOTYPE), "fifo"),
        (_member("./orphan", tarfile.LNKTYPE, link="./missing"), "no earlier file"),
    ],
)
def test_unsafe_members_are_named(member: tarfile.TarInfo, reason: str) -> None:
    listing = list_archive(_tar(member))
    assert len(listing.unsafe) == 1
    assert member.name in listing.unsafe[0] and reason in listing.unsafe[0]


def test_a_path_through_an_earlier_symlink_is_unsafe() -> None:
    """A symlink to /etc followed by a file under it would write to /etc on extraction."""
    listing = list_archive(
        _tar(
            _member("./conf", tarfile.SYMTYPE, link="/etc"),
            _member("./conf/cron.d/evil", size=3),
        )
    )
    assert listing.unsafe == ["'./conf/cron.d/evil': lies under the symlink 'conf'"]


def test_a_truncated_archive_is_an_error() -> None:
    whole = _tar(_member("./big.bin", size=100_000)).getvalue()
    with pytest.raises(tarfile.ReadError):
        list_archive(io.BytesIO(whole[:50_000]))


def test_setuid_and_setgid_files_are_unsafe_but_a_setgid_directory_is_not() -> None:
    setuid = _member("./su", size=1)
    setuid.mode = 0o4755
    setgid = _member("./sg", size=1)
    setgid.mode = 0o2755
    shared = _member("./shared", tarfile.DIRTYPE)
    shared.mode = 0o2775
    listing = list_archive(_tar(setuid, setgid, shared))
    assert listing.unsafe == [
        "'./su': setuid or setgid file",
        "'./sg': setuid or setgid file",
    ]


def test_hard_links_to_or_through_a_symlink_are_unsafe() -> None:
    """linkat() follows the target's parents: a link through a symlink reaches out."""
    listing = list_archive(
        _tar(
            _member("./etc", tarfile.SYMTYPE, link="/etc"),
            _member("./to-link", tarfile.LNKTYPE, link="./etc"),
            _member("./through", tarfile.LNKTYPE, link="./etc/shadow"),
        )
    )
    assert listing.unsafe == [
        "'./to-link': hard link to the symlink './etc'",
        "'./through': hard link through the symlink 'etc'",
    ]
