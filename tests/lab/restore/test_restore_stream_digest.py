"""What a restore checks the archive's stream against: the BLAKE3 verification recorded
for the very bytes the manifest describes, or else the manifest's SHA-256; either way a
stream that is not the backed-up archive is never swapped in. The stream itself goes
over SSH from S3 and locally (`scene`); what is about the record in the state database
runs on SQLite and PostgreSQL (`state_scene`)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

import blake3
import pytest

import daemon.backup.restore as restore_module
from daemon.backup import object_digest
from daemon.backup.archive import HashingReader
from daemon.backup.errors import BackupError
from daemon.backup.restore import RestoreRequest, restore_backup
from daemon.store.models import Backup
from tests.lab.backup_helpers import tree_fingerprint
from tests.lab.restore_scene import (
    RestoreScene,
    crafted_archive,
    deface,
    member,
    store_as_backup,
)

_ARCHIVE = "files-1.tar.zst"


def _restore(scene: RestoreScene) -> restore_module.RestoreReport:
    return restore_backup(scene.app.backups, RestoreRequest(scene.backup.id, force=True))


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """Record the digests each stream of a restore is hashed with."""
    made: list[tuple[str, ...]] = []

    def spied(stream: Any, digests: Iterable[str] = ("sha256",)) -> HashingReader:
        made.append(tuple(digests))
        return HashingReader(stream, digests)

    monkeypatch.setattr(restore_module, "HashingReader", spied)
    return made


def _edit_record(scene: RestoreScene, change: Callable[[dict[str, Any]], None]) -> None:
    """Change the archive's verification record in the state database, as someone able to
    write it would."""
    with scene.app.sessions() as session:
        row = session.get(Backup, scene.backup.id)
        assert row is not None and row.manifest is not None
        manifest = copy.deepcopy(row.manifest)
        change(manifest["verification"]["objects"][_ARCHIVE])
        row.manifest = manifest
        session.commit()


def _restored_with(scene: RestoreScene, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """Deface the site, restore it, check it is back; return the digests the stream was
    hashed with."""
    original = tree_fingerprint(scene.docroot)
    made = _spy(monkeypatch)
    deface(scene.docroot)

    _restore(scene)

    assert tree_fingerprint(scene.docroot) == original
    return made


def _refused(scene: RestoreScene, message: str) -> None:
    """Deface the site and check a restore is refused with `message`, nothing swapped."""
    deface(scene.docroot)
    live = tree_fingerprint(scene.docroot)

    with pytest.raises(BackupError, match=message):
        _restore(scene)

    assert tree_fingerprint(scene.docroot) == live
    assert scene.leftovers() == []


def _replace_object(scene: RestoreScene) -> None:
    """Put another readable archive in the store in place of the backed-up one."""
    store_as_backup(
        scene, crafted_archive([member("./", b"5"), member("./x", data=b"x")]), manifest=False
    )


def test_verification_records_the_archives_blake3_and_the_restore_checks_it(
    scene: RestoreScene, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert scene.backup.manifest is not None and scene.backup.verification is not None
    entry = scene.backup.manifest.objects[0]
    stored = scene.app.backups.store.read(f"acct-1/{scene.backup.id}/{_ARCHIVE}")
    record = scene.backup.verification["objects"][_ARCHIVE][object_digest.RECORD]
    assert record == {"digest": blake3.blake3(stored).hexdigest(), "archive_sha256": entry.sha256}

    assert _restored_with(scene, monkeypatch) == [("blake3",)]


def test_the_record_is_kept_by_the_state_database_and_used_on_sqlite_and_postgresql(
    state_scene: RestoreScene, monkeypatch: pytest.MonkeyPatch
) -> None:
    read_back = state_scene.app.backups.get(state_scene.backup.id)
    assert read_back.manifest is not None
    entry = read_back.manifest.objects[0]
    stored = state_scene.app.backups.store.read(f"acct-1/{read_back.id}/{_ARCHIVE}")

    checked = object_digest.expected(read_back.verification, entry)

    assert (checked.name, checked.value) == ("blake3", blake3.blake3(stored).hexdigest())
    assert _restored_with(state_scene, monkeypatch) == [("blake3",)]


def test_an_archive_changed_in_the_store_fails_the_blake3_check_and_nothing_is_swapped(
    scene: RestoreScene,
) -> None:
    _replace_object(scene)

    _refused(scene, "another BLAKE3 than its verification recorded")


def test_a_blake3_record_that_is_not_the_archives_fails_the_restore(
    state_scene: RestoreScene,
) -> None:
    """The stream really is compared with the record: the right archive against a forged
    (well-formed) digest is refused."""

    def forged(listing: dict[str, Any]) -> None:
        listing[object_digest.RECORD]["digest"] = blake3.blake3(b"another archive").hexdigest()

    _edit_record(state_scene, forged)

    _refused(state_scene, "another BLAKE3 than its verification recorded")


def _no_record(listing: dict[str, Any]) -> None:
    del listing[object_digest.RECORD]


def _of_another_archive(listing: dict[str, Any]) -> None:
    listing[object_digest.RECORD]["archive_sha256"] = "0" * 64


def _out_of_shape(listing: dict[str, Any]) -> None:
    listing[object_digest.RECORD]["digest"] = "NOT-HEX"


@pytest.mark.parametrize(
    "change",
    [_no_record, _of_another_archive, _out_of_shape],
    ids=["verified-before-the-record", "of-another-archive", "out-of-shape"],
)
def test_without_a_usable_record_the_stream_is_checked_against_the_manifests_sha256(
    state_scene: RestoreScene,
    monkeypatch: pytest.MonkeyPatch,
    change: Callable[[dict[str, Any]], None],
) -> None:
    _edit_record(state_scene, change)

    assert _restored_with(state_scene, monkeypatch) == [("sha256",)]

    _replace_object(state_scene)
    _refused(state_scene, "another SHA-256 than its manifest records")


def test_an_archive_recorded_in_the_manifest_after_verification_is_checked_by_its_sha256(
    state_scene: RestoreScene, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The manifest's SHA-256 changed since verification (someone able to write both the
    store and the manifest): the old record no longer names it, and is not used."""
    store_as_backup(
        state_scene,
        crafted_archive([member("./", b"5"), member("./index.html", data=b"<h1>x</h1>")]),
    )
    made = _spy(monkeypatch)

    _restore(state_scene)

    assert made == [("sha256",)]
    assert (state_scene.docroot / "index.html").read_bytes() == b"<h1>x</h1>"
