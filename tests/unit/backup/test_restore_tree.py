"""Restore targets inside the allowed roots, and the comparison of the staging tree's
listing with what the archive holds."""

from __future__ import annotations

import re

import pytest

from daemon.backup.restore_listing import ListingError, TreeEntry, differences, parse_listing
from daemon.backup.staging import TargetError, staged_target


def test_a_target_is_split_below_its_longest_allowed_root() -> None:
    target = staged_target("/home/alice/public_html", ["/home", "/home/alice"])
    assert (target.root, target.parents, target.name) == ("/home/alice", (), "public_html")
    assert re.fullmatch(r"\.lapse-restore-[0-9a-f]{16}", target.staging)
    assert target.previous == ".lapse-previous-" + target.staging.rsplit("-", 1)[1]
    assert target.staging_path == f"/home/alice/{target.staging}"


def test_every_restore_gets_a_new_staging_name() -> None:
    names = {staged_target("/srv/www/a", ["/srv/www"]).staging for _ in range(50)}
    assert len(names) == 50


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("/srv/www", "outside the host's allowed_roots"),
        ("/srv/other/a", "outside the host's allowed_roots"),
        ("/srv/www/../etc", "clean absolute path"),
        ("/srv/www/./a", "clean absolute path"),
        ("/srv/www//a", "clean absolute path"),
        ("srv/www/a", "clean absolute path"),
    ],
)
def test_targets_outside_or_unclean_are_refused(path: str, problem: str) -> None:
    with pytest.raises(TargetError, match=re.escape(problem)):
        staged_target(path, ["/srv/www"])


def _listing(*entries: tuple[bytes, ...], digests: tuple[bytes, ...] = (), uid: int = 0) -> bytes:
    fields = [b"lapse-uid %d" % uid]
    for entry in entries:
        fields.extend(entry)
    fields.append(b"--lapse-digests--")
    fields.extend(digests)
    return b"\0".join(fields) + b"\0"


def test_a_listing_with_odd_names_reads_back() -> None:
    digest = b"a" * 64
    output = _listing(
        (b"d", b"755", b"0", b"0", b"1.5", b"4096", b".", b""),
        (b"f", b"644", b"12", b"13", b"1700000000.9", b"3", b"./line\nbreak \xff", b""),
        (b"l", b"777", b"12", b"13", b"1700000001.0", b"6", b"./link", b"/etc/x"),
        digests=(digest + b"  ./line\nbreak \xff",),
    )
    uid, tree = parse_listing(output)
    assert uid == 0
    assert tree == {
        b".": TreeEntry("d", 0o755, 0, 0, None),
        b"line\nbreak \xff": TreeEntry("f", 0o644, 12, 13, 1700000000, 3, "a" * 64),
        b"link": TreeEntry("l", 0o777, 12, 13, 1700000001, target=b"/etc/x"),
    }


def test_a_digest_for_a_path_not_listed_is_refused() -> None:
    """A digest line naming no listed path (a tool that printed a name altered): an
    error naming the path, not a crash."""
    output = _listing(
        (b"d", b"755", b"0", b"0", b"1.5", b"4096", b".", b""),
        (b"f", b"644", b"0", b"0", b"1700000000.9", b"3", b"./caf\xe9", b""),
        digests=(b"a" * 64 + b"  ./caf\xef\xbf\xbd",),
    )
    with pytest.raises(ListingError, match=r"a digest for './caf\ufffd', which it did not list"):
        parse_listing(output)


def test_a_digest_that_is_not_hex_reads_as_a_differing_one() -> None:
    output = _listing(
        (b"f", b"644", b"0", b"0", b"1700000000.9", b"3", b"./x", b""),
        digests=(b"\xff" * 64 + b"  ./x",),
    )
    _, tree = parse_listing(output)
    assert tree[b"x"].digest == "\ufffd" * 64


def test_differences_name_each_path_once() -> None:
    expected = {
        b".": TreeEntry("d", 0o755, 0, 0, None),
        b"a": TreeEntry("f", 0o644, 1, 1, 10, 3, "x" * 128),
        b"gone": TreeEntry("f", 0o644, 1, 1, 10, 3, "y" * 128),
        b"l": TreeEntry("l", 0o777, 1, 1, 10, target=b"t"),
    }
    found = {
        b".": TreeEntry("d", 0o700, 0, 0, None),
        b"a": TreeEntry("f", 0o644, 2, 1, 10, 3, "x" * 128),
        b"new": TreeEntry("f", 0o644, 1, 1, 10, 1, "z" * 128),
        b"l": TreeEntry("l", 0o777, 1, 1, 10, target=b"elsewhere"),
    }
    assert differences(expected, found, owners=True) == [
        ".: mode differs (0700 instead of 0755)",
        "a: uid differs",
        "gone: missing",
        "l: link target differs",
        "new: not in the backup (file)",
    ]
    assert differences(expected, found, owners=False)[1] == "gone: missing"
