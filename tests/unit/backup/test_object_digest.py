"""The digest a restore checks a site archive's stream against: made by verification in
its one pass over the archive, and taken only for the very bytes the manifest names."""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import blake3
import pytest
import zstandard

from daemon.backup import object_digest
from daemon.backup.archive import HashingReader
from daemon.backup.manifest import BackupObject
from daemon.backup.stores.local import LocalStore
from daemon.backup.verify import check_object


def _archive() -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo("index.html")
        info.size = 5
        archive.addfile(info, io.BytesIO(b"hello"))
    return zstandard.ZstdCompressor().compress(raw.getvalue())


def _entry(data: bytes) -> BackupObject:
    sha256 = hashlib.sha256(data).hexdigest()
    return BackupObject("files-1.tar.zst", "files", "/srv/www", "zstd", len(data), sha256)


def _verification(entry: BackupObject, record: Any, ok: bool = True) -> dict[str, Any]:
    return {"ok": ok, "objects": {entry.name: {"members": 1, object_digest.RECORD: record}}}


def test_a_reader_hashes_what_passes_with_each_digest_asked_for() -> None:
    data = b"x" * 3_000_001
    reader = HashingReader(io.BytesIO(data), ("sha256", "blake3"))
    reader.drain()

    assert reader.size == len(data)
    assert reader.sha256 == hashlib.sha256(data).hexdigest()
    assert reader.hexdigest("blake3") == blake3.blake3(data).hexdigest()


def test_a_reader_gives_no_digest_it_was_not_asked_for() -> None:
    reader = HashingReader(io.BytesIO(b"data"), ("blake3",))
    reader.drain()

    with pytest.raises(KeyError):
        reader.sha256  # noqa: B018
    with pytest.raises(KeyError):
        HashingReader(io.BytesIO(b""), ("md5",))


def test_a_record_of_the_manifests_archive_gives_its_blake3() -> None:
    entry = _entry(_archive())
    digest = blake3.blake3(_archive()).hexdigest()
    verification = _verification(entry, object_digest.record(entry, digest))

    checked = object_digest.expected(verification, entry)

    assert (checked.name, checked.value, checked.label) == ("blake3", digest, "BLAKE3")


_HEX = "a" * 64


@pytest.mark.parametrize(
    ("record", "ok"),
    [
        (lambda sha256: {"digest": _HEX, "archive_sha256": "0" * 64}, True),
        (lambda sha256: {"digest": "A" * 64, "archive_sha256": sha256}, True),
        (lambda sha256: {"digest": _HEX[1:], "archive_sha256": sha256}, True),
        (lambda sha256: {"digest": 7, "archive_sha256": sha256}, True),
        (lambda sha256: {"archive_sha256": sha256}, True),
        (lambda sha256: _HEX, True),
        (lambda sha256: {"digest": _HEX, "archive_sha256": sha256}, False),
    ],
    ids=["other-archive", "upper-case", "short", "not-text", "no-digest", "not-a-record", "failed"],
)
def test_without_a_usable_record_the_manifests_sha256_is_checked(
    record: Callable[[str], Any], ok: bool
) -> None:
    """`record` is made of the manifest's SHA-256; `ok` is whether verification passed."""
    entry = _entry(_archive())

    checked = object_digest.expected(_verification(entry, record(entry.sha256), ok), entry)

    assert (checked.name, checked.value, checked.label) == ("sha256", entry.sha256, "SHA-256")


def test_no_verification_at_all_checks_the_sha256() -> None:
    entry = _entry(b"x")
    assert object_digest.expected(None, entry).name == "sha256"
    assert object_digest.expected({"ok": True}, entry).name == "sha256"
    assert object_digest.expected({"ok": True, "objects": []}, entry).name == "sha256"


def test_verifying_a_site_archive_for_restores_records_its_blake3(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    data = _archive()
    store.put("acct/b1/files-1.tar.zst", data)
    entry = _entry(data)

    check = check_object(store, "acct/b1/files-1.tar.zst", entry, digests=True)
    plain = check_object(store, "acct/b1/files-1.tar.zst", entry)

    assert check.ok and check.listing is not None
    assert check.listing[object_digest.RECORD] == {
        "digest": blake3.blake3(data).hexdigest(),
        "archive_sha256": entry.sha256,
    }
    assert plain.ok and plain.listing is not None
    assert object_digest.RECORD not in plain.listing


def test_an_archive_failing_its_sha256_gets_no_blake3_record(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    data = _archive()
    store.put("acct/b1/files-1.tar.zst", data)
    entry = _entry(data)
    entry.sha256 = "0" * 64

    check = check_object(store, "acct/b1/files-1.tar.zst", entry, digests=True)

    assert not check.ok
    assert check.listing is None
