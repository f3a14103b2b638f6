"""The member digests verification stores beside a site archive: the restore takes each
file's digest from them instead of digesting the archive again, still compares the
host's staging tree with them, and digests for itself whenever the list cannot be
trusted."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from typing import Any

import blake3
import pytest
from structlog.testing import capture_logs

import daemon.backup.restore as restore_module
from daemon.backup import member_digests, restore_listing, staging
from daemon.backup.errors import BackupError
from daemon.backup.restore import RestoreRequest, restore_backup
from daemon.backup.restore_listing import Tree
from daemon.store.models import Backup
from tests.lab.backup_helpers import tree_fingerprint
from tests.lab.restore_scene import RestoreScene, deface

_ARCHIVE = "files-1.tar.zst"


def _record(scene: RestoreScene) -> Mapping[str, Any]:
    assert scene.backup.manifest is not None
    record = member_digests.recorded(scene.backup.verification, scene.backup.manifest.objects[0])
    assert record is not None
    return record


def _list_key(scene: RestoreScene) -> str:
    return f"acct-1/{scene.backup.id}/{_record(scene)['object']}"


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[Mapping[bytes, str] | None]:
    """Record the known digests each restore's description of the archive was given."""
    given: list[Mapping[bytes, str] | None] = []
    describe = restore_listing.archive_tree

    def spied(stream: Any, new_digest: Any, known: Mapping[bytes, str] | None = None) -> Tree:
        given.append(known)
        return describe(stream, new_digest, known)

    monkeypatch.setattr(restore_module, "archive_tree", spied)
    return given


def _restore(scene: RestoreScene) -> restore_module.RestoreReport:
    return restore_backup(scene.app.backups, RestoreRequest(scene.backup.id, force=True))


def test_verification_stores_the_digests_and_the_restore_takes_them_from_there(
    scene: RestoreScene, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = tree_fingerprint(scene.docroot)
    stored = scene.app.backups.store.read(_list_key(scene))
    record = _record(scene)
    assert record["size"] == len(stored)
    assert record["sha256"] == hashlib.sha256(stored).hexdigest()
    given = _spy(monkeypatch)
    deface(scene.docroot)

    report = _restore(scene)

    assert tree_fingerprint(scene.docroot) == original
    assert report.restored[0].check.endswith("swapped in")
    assert scene.leftovers() == []
    (known,) = given
    assert known is not None
    files = [path for path in scene.docroot.rglob("*") if path.is_file() and not path.is_symlink()]
    assert len(known) == len(files) > 0
    home = (scene.docroot / "index.html").read_bytes()
    assert known[b"index.html"] == blake3.blake3(home).hexdigest()


def _rewrite_list(scene: RestoreScene, digests: dict[bytes, str]) -> None:
    """Store `digests` as the archive's list and record it in the state database, as
    someone able to write both would."""
    assert scene.backup.manifest is not None
    entry = scene.backup.manifest.objects[0]
    data = member_digests.encode(digests, entry.sha256)
    scene.app.backups.store.put(_list_key(scene), data)
    with scene.app.sessions() as session:
        row = session.get(Backup, scene.backup.id)
        assert row is not None
        assert row.manifest is not None
        manifest = copy.deepcopy(row.manifest)
        record = manifest["verification"]["objects"][_ARCHIVE][member_digests.RECORD]
        record.update(size=len(data), sha256=hashlib.sha256(data).hexdigest())
        row.manifest = manifest
        session.commit()


def _stored_digests(scene: RestoreScene) -> dict[bytes, str]:
    assert scene.backup.manifest is not None
    sha256 = scene.backup.manifest.objects[0].sha256
    return member_digests.decode(scene.app.backups.store.read(_list_key(scene)), sha256)


def test_a_list_not_matching_the_archive_fails_the_comparison_and_nothing_is_swapped(
    scene: RestoreScene,
) -> None:
    """The list is what the host's tree is compared with: a wrong digest in it is a
    difference, not a pass."""
    digests = _stored_digests(scene)
    digests[b"index.html"] = "0" * 64
    _rewrite_list(scene, digests)
    deface(scene.docroot)
    live = tree_fingerprint(scene.docroot)

    with pytest.raises(BackupError) as caught:
        _restore(scene)

    assert "index.html: content differs; nothing swapped" in str(caught.value)
    assert tree_fingerprint(scene.docroot) == live
    assert scene.leftovers() == []


def test_a_list_changed_in_the_store_alone_is_not_used_and_the_restore_digests_itself(
    scene: RestoreScene, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = tree_fingerprint(scene.docroot)
    forged = dict.fromkeys(_stored_digests(scene), "0" * 64)
    assert scene.backup.manifest is not None
    sha256 = scene.backup.manifest.objects[0].sha256
    scene.app.backups.store.put(_list_key(scene), member_digests.encode(forged, sha256))
    given = _spy(monkeypatch)
    deface(scene.docroot)

    with capture_logs() as logs:
        _restore(scene)

    assert given == [None]
    assert tree_fingerprint(scene.docroot) == original
    warnings = [entry for entry in logs if entry["log_level"] == "warning"]
    assert "changed in the store since it was verified" in warnings[0]["reason"]


def test_a_list_gone_from_the_store_is_not_used_and_the_restore_digests_itself(
    scene: RestoreScene, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = tree_fingerprint(scene.docroot)
    scene.app.backups.store.delete(_list_key(scene))
    given = _spy(monkeypatch)
    deface(scene.docroot)

    _restore(scene)

    assert given == [None]
    assert tree_fingerprint(scene.docroot) == original


def test_a_host_digesting_with_sha256_is_given_no_blake3_list(
    scene: RestoreScene, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = tree_fingerprint(scene.docroot)
    extract = staging.extract_script

    def without_b3sum(target: staging.StagedTarget, compression: str, replace: bool = True) -> str:
        script = extract(target, compression, replace)
        assert "command -v b3sum" in script
        return script.replace("command -v b3sum", "command -v lapse-no-such-b3sum")

    monkeypatch.setattr(staging, "extract_script", without_b3sum)
    given = _spy(monkeypatch)
    deface(scene.docroot)

    _restore(scene)

    assert given == [None]
    assert tree_fingerprint(scene.docroot) == original
