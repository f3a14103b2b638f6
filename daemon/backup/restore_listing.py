"""What a restored tree must hold, and whether the host's staging tree holds exactly that.

The daemon reads the archive once, as it streams to the host: every member is
checked against the restore rules (daemon.backup.archive.unsafe_reason) and
described (type, mode, owner, mtime, size, SHA-256 digest of its content,
link target). The host lists the staging tree it extracted the same way (GNU
find, and b3sum, openssl or sha256sum). The restore goes on only when the two are
equal, entry for entry: a missing, extra, changed or relinked path fails it.

The content digest is the one the host's extract script announces before the
archive streams (daemon.backup.staging): BLAKE3 where the host has b3sum, SHA-256
otherwise. Both are cryptographic; BLAKE3 (the blake3 package in the daemon, b3sum
on the host, both with SIMD) costs about 40 % of SHA-256's CPU time in the daemon
and a third on the host, where the digests are the last thing the restore waits
for, even with the CPU's SHA instructions that hashlib and `openssl dgst` use. A
host without b3sum digests with openssl, or coreutils' sha256sum (slower, same
digests). The object as a whole is still checked as it streams, against the
manifest's SHA-256 or the BLAKE3 verification recorded for it
(daemon.backup.object_digest).
"""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import BinaryIO

import blake3

from daemon.backup import tar_walk
from daemon.backup.archive import UnsafeArchiveError, clean_name, member_key, unsafe_reason
from daemon.backup.staging import DIGEST_MARK, LISTING_DIGESTS_MARK, UID_MARK
from daemon.domain.errors import LapseError

# find's %y letters for the kinds a site archive may hold.
_FILE, _DIRECTORY, _SYMLINK = "f", "d", "l"
_LISTING_FIELDS = 8
# sha256sum's lines: 64 hex digits, then two spaces and the name (b3sum's too).
_DIGEST_HEX = 64
# The digests an extract script may announce, by name.
DIGESTS: dict[bytes, tar_walk.NewDigest] = {b"blake3": blake3.blake3, b"sha256": hashlib.sha256}


class ListingError(LapseError, ValueError):
    """The host's listing of a staging tree could not be read."""


@dataclass(frozen=True)
class TreeEntry:
    """One path of a tree: kind ('f', 'd', 'l'), permission bits, owner, whole-second
    mtime (None for a directory, whose time tar sets last), and a file's size and
    content digest (hex SHA-256) or a symlink's target."""

    kind: str
    mode: int
    uid: int
    gid: int
    mtime: int | None
    size: int = 0
    digest: str = ""
    target: bytes = b""


Tree = dict[bytes, TreeEntry]


def announced_digest(announcement: bytes) -> tar_walk.NewDigest:
    """Return the digest an extract script announced in `announcement` (its first
    output, up to the NUL). Raises ListingError for anything else."""
    head, _, name = announcement.partition(b" ")
    if head != DIGEST_MARK or name not in DIGESTS:
        shown = announcement[:64].decode("utf-8", "backslashreplace")
        raise ListingError(f"the host's extract script announced no known digest ({shown!r})")
    return DIGESTS[name]


def archive_tree(
    stream: BinaryIO, new_digest: tar_walk.NewDigest, known: Mapping[bytes, str] | None = None
) -> Tree:
    """Read a tar stream to its end; return what its extraction must hold, each file's
    content digested with `new_digest`, or, for a file `known` names, given the digest
    it maps the file's key (daemon.backup.archive.member_key) to.

    `known` are the digests verification stored for this very archive
    (daemon.backup.member_digests): the caller must still check the stream against
    the manifest (daemon.backup.object_digest) before it trusts the tree. Raises
    UnsafeArchiveError at the first member the restore rules refuse (the caller stops
    streaming then), tarfile.TarError or a decompression error for an unreadable
    archive. Walked by daemon.backup.tar_walk: each file's content goes to its digest
    without tarfile's copies, and a known file's content is passed over.
    """
    tree: Tree = {}
    symlinks: set[str] = set()
    regular: set[str] = set()

    def visit(member: tarfile.TarInfo, digest: Callable[[], str]) -> None:
        problem = unsafe_reason(member, symlinks, regular)
        if problem:
            raise UnsafeArchiveError(problem)
        name = member_key(member.name)
        if member.issym():
            symlinks.add(clean_name(member.name))
        elif member.isreg():
            regular.add(clean_name(member.name))
        if known is not None and member.isreg() and name in known:
            digest = _given(known[name])
        tree[name] = _entry(member, tree, digest)

    tar_walk.walk(stream, visit, new_digest)
    return tree


def _given(digest: str) -> Callable[[], str]:
    return lambda: digest


def _entry(member: tarfile.TarInfo, tree: Tree, digest: Callable[[], str]) -> TreeEntry:
    mode = member.mode & 0o7777
    if member.islnk():
        # A hard link is the same inode as its target: same content, mode and owner.
        linked = tree.get(member_key(member.linkname))
        if linked is None or linked.kind != _FILE:
            raise UnsafeArchiveError(f"{member.name!r}: hard link to no earlier file")
        return linked
    if member.isdir():
        return TreeEntry(_DIRECTORY, mode, member.uid, member.gid, None)
    if member.issym():
        target = member.linkname.encode("utf-8", "surrogateescape")
        return TreeEntry(_SYMLINK, mode, member.uid, member.gid, int(member.mtime), target=target)
    return TreeEntry(_FILE, mode, member.uid, member.gid, int(member.mtime), member.size, digest())


def parse_listing(output: bytes) -> tuple[int, Tree]:
    """Read what the extract script printed; return (the host user's uid, the tree).

    Raises ListingError when the output is not in the expected shape.
    """
    fields = output.split(b"\0")
    head, _, uid = fields[0].partition(b" ")
    if head != UID_MARK or not uid.isdigit():
        raise ListingError("the host's listing of the staging tree does not start as expected")
    try:
        mark = fields.index(LISTING_DIGESTS_MARK)
    except ValueError:
        raise ListingError("the host's listing of the staging tree is incomplete") from None
    entries = fields[1:mark]
    if len(entries) % _LISTING_FIELDS:
        raise ListingError("the host's listing of the staging tree is cut short")
    tree: Tree = {}
    for at in range(0, len(entries), _LISTING_FIELDS):
        kind, mode, owner, group, mtime, size, path, target = entries[at : at + _LISTING_FIELDS]
        tree[_hostmember_key(path)] = _host_entry(kind, mode, owner, group, mtime, size, target)
    for line in fields[mark + 1 :]:
        if line:
            digest, path = line[:_DIGEST_HEX].decode("ascii", "replace"), line[_DIGEST_HEX + 2 :]
            listed = tree.get(_hostmember_key(path))
            if listed is None:
                shown = path.decode("utf-8", "backslashreplace")
                raise ListingError(
                    f"the host's listing has a digest for {shown!r}, which it did not list"
                )
            tree[_hostmember_key(path)] = replace(listed, digest=digest)
    return int(uid), tree


def _hostmember_key(path: bytes) -> bytes:
    return b"." if path == b"." else path.removeprefix(b"./")


def _host_entry(
    kind: bytes, mode: bytes, owner: bytes, group: bytes, mtime: bytes, size: bytes, target: bytes
) -> TreeEntry:
    letter = kind.decode()
    try:
        seconds = None if letter == _DIRECTORY else int(mtime.split(b".")[0])
        return TreeEntry(
            letter,
            int(mode, 8),
            int(owner),
            int(group),
            seconds,
            int(size) if letter == _FILE else 0,
            target=target if letter == _SYMLINK else b"",
        )
    except ValueError:
        raise ListingError(f"unreadable listing entry {kind!r} {mode!r} {mtime!r}") from None


def differences(expected: Tree, found: Tree, owners: bool) -> list[str]:
    """Return one line per path whose entry differs between the archive (`expected`)
    and the staging tree (`found`), sorted by path; compare owners when `owners`."""
    lines = []
    names = expected.keys() | found.keys()
    if b"." not in expected:
        # An archive without a top member leaves the staging directory as it was made.
        names.discard(b".")
    for name in sorted(names):
        shown = name.decode("utf-8", "backslashreplace")
        want, have = expected.get(name), found.get(name)
        if have is None:
            lines.append(f"{shown}: missing")
        elif want is None:
            lines.append(f"{shown}: not in the backup ({_kind(have.kind)})")
        else:
            problem = _differs(want, have, owners)
            if problem:
                lines.append(f"{shown}: {problem}")
    return lines


def _differs(want: TreeEntry, have: TreeEntry, owners: bool) -> str | None:
    if want.kind != have.kind:
        return f"is a {_kind(have.kind)}, the backup has a {_kind(want.kind)}"
    # What the content is first, then how it is kept: the first difference is the one named.
    checks: list[tuple[str, object, object]] = [
        ("size", want.size, have.size),
        ("content", want.digest, have.digest),
        ("link target", want.target, have.target),
        # A symlink's own mode means nothing on Linux (find shows 777 whatever tar had).
        (
            "mode",
            want.mode if want.kind != _SYMLINK else 0,
            have.mode if want.kind != _SYMLINK else 0,
        ),
    ]
    if owners:
        checks += [("uid", want.uid, have.uid), ("gid", want.gid, have.gid)]
    checks.append(("mtime", want.mtime, have.mtime))
    for what, wanted, had in checks:
        if wanted != had:
            if what == "mode":
                return f"mode differs ({have.mode:04o} instead of {want.mode:04o})"
            return f"{what} differs"
    return None


def _kind(letter: str) -> str:
    return {_FILE: "file", _DIRECTORY: "directory", _SYMLINK: "symlink"}.get(letter, letter)
