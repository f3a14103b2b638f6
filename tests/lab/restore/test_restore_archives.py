"""Crafted archives put in the store as a backup, then restored: none can create or change
anything outside the staging directory, and each is refused naming the member."""

from __future__ import annotations

import contextlib
import os
import tarfile
from collections.abc import Callable

import pytest

import daemon.backup.restore_listing as tree_module
from daemon.backup.archive import UnsafeArchiveError
from daemon.backup.errors import BackupError
from daemon.backup.restore import RestoreRequest, restore_backup
from tests.lab.backup_helpers import tree_fingerprint
from tests.lab.restore_scene import (
    Member,
    RestoreScene,
    crafted_archive,
    member,
    store_as_backup,
)

TOP = member("./", tarfile.DIRTYPE)
# Each builds, from the scene's outside directory, members aiming at it, and the refusal.
Crafted = Callable[[str], tuple[list[Member], str]]
CRAFTED: dict[str, Crafted] = {
    "absolute name": lambda out: ([member(f"{out}/evil", data=b"owned\n")], "absolute path"),
    "dot-dot": lambda out: (
        [member("./../../../outside/evil", data=b"owned\n")],
        "contains '..'",
    ),
    "under an absolute symlink": lambda out: (
        [member("./exit", tarfile.SYMTYPE, link=out), member("./exit/evil", data=b"owned\n")],
        "lies under the symlink 'exit'",
    ),
    "under a climbing symlink": lambda out: (
        [
            member("./up", tarfile.SYMTYPE, link="../../outside"),
            member("./up/evil", data=b"owned\n"),
        ],
        "lies under the symlink 'up'",
    ),
    "hard link to a symlink": lambda out: (
        [
            member("./exit", tarfile.SYMTYPE, link=f"{out}/passwd"),
            member("./hard", tarfile.LNKTYPE, link="./exit"),
        ],
        "hard link to the symlink './exit'",
    ),
    "hard link through a symlink": lambda out: (
        [
            member("./exit", tarfile.SYMTYPE, link=out),
            member("./hard", tarfile.LNKTYPE, link="./exit/passwd"),
            member("./hard", data=b"owned\n"),
        ],
        "hard link through the symlink 'exit'",
    ),
    "hard link out": lambda out: (
        [member("./hard", tarfile.LNKTYPE, link=f"{out}/passwd")],
        "outside the archive",
    ),
    "hard link to a later member": lambda out: (
        [member("./hard", tarfile.LNKTYPE, link="./later"), member("./later", data=b"x")],
        "no earlier file of the archive",
    ),
    "device": lambda out: ([member("./null", tarfile.CHRTYPE)], "device file"),
    "block device": lambda out: ([member("./disk", tarfile.BLKTYPE)], "device file"),
    "fifo": lambda out: ([member("./pipe", tarfile.FIFOTYPE)], "fifo"),
    "setuid file": lambda out: (
        [member("./sh", data=b"#!/bin/sh\n", mode=0o4755)],
        "setuid or setgid file",
    ),
    "setgid file": lambda out: (
        [member("./sh", data=b"#!/bin/sh\n", mode=0o2755)],
        "setuid or setgid file",
    ),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_a_crafted_archive_is_refused_and_changes_nothing(scene: RestoreScene, case: str) -> None:
    members, reason = CRAFTED[case](str(scene.outside))
    store_as_backup(scene, crafted_archive([TOP, member("./index.html", data=b"ok"), *members]))
    live = tree_fingerprint(scene.docroot)
    before = scene.untouched()

    with pytest.raises(UnsafeArchiveError) as refused:
        restore_backup(scene.app.backups, RestoreRequest(scene.backup.id, force=True))

    assert reason in str(refused.value)
    assert "refused before the host received it; the live tree is untouched" in str(refused.value)
    assert tree_fingerprint(scene.docroot) == live
    assert scene.untouched() == before
    assert sorted(os.listdir(scene.outside)) == ["passwd"]
    assert scene.leftovers() == []


@pytest.mark.parametrize(
    "case",
    [
        "absolute name",
        "dot-dot",
        "under an absolute symlink",
        "under a climbing symlink",
        "hard link to a symlink",
        "hard link through a symlink",
        "hard link out",
    ],
)
def test_without_the_daemons_check_staging_still_confines_the_archive(
    scene: RestoreScene, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second line: with the member check removed, GNU tar in a fresh staging directory
    still writes nothing outside it (the restore may then fail its comparison)."""
    monkeypatch.setattr(tree_module, "unsafe_reason", lambda *args: None)
    members, _reason = CRAFTED[case](str(scene.outside))
    store_as_backup(scene, crafted_archive([TOP, *members]))
    before = scene.untouched()

    with contextlib.suppress(BackupError, UnsafeArchiveError):
        restore_backup(scene.app.backups, RestoreRequest(scene.backup.id, force=True))

    assert scene.untouched() == before
    assert sorted(os.listdir(scene.outside)) == ["passwd"]
    assert (scene.outside / "passwd").read_text() == "root:x:0:0::/root:/bin/sh\n"


def test_members_under_a_symlink_already_on_disk_land_in_the_restored_tree(
    scene: RestoreScene,
) -> None:
    """The client made uploads/ a link out after the backup; the archive's uploads/ files
    go into a real directory of the new tree, never through the link."""
    target = scene.docroot / "uploads"
    for path in sorted(target.rglob("*"), reverse=True):
        path.unlink() if not path.is_dir() or path.is_symlink() else path.rmdir()
    target.rmdir()
    os.symlink(scene.outside, target)
    store_as_backup(
        scene,
        crafted_archive(
            [
                TOP,
                member("./uploads", tarfile.DIRTYPE),
                member("./uploads/passwd", data=b"owned\n"),
            ]
        ),
    )
    before = scene.untouched()

    restore_backup(scene.app.backups, RestoreRequest(scene.backup.id, force=True))

    assert scene.untouched() == before
    assert not target.is_symlink() and target.is_dir()
    assert (target / "passwd").read_bytes() == b"owned\n"
    assert sorted(os.listdir(scene.docroot)) == ["uploads"]
