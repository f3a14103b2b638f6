"""The backup store contract: what backups, proofs, restores and expiry rely on from every
store (daemon/backup/stores/base.py), checked against each of them.

- what is put is read back byte for byte, an empty object and a streamed upload of
  several parts included;
- an upload becomes visible only when completed: until then the key holds nothing, or
  the object it held before, whole;
- an aborted upload leaves nothing, and `abort_incomplete` removes what an upload cut
  short by a crash left under a prefix (and nothing under another);
- `delete_prefix` deletes exactly the objects under a prefix and counts them;
- deleting a missing key is fine; reading or pinning one raises BackupStoreError
  naming the object;
- `protect` answers whether the store can protect, and a protected object (the version
  `pin` named) survives an attempt to write over it;
- `download_url` is None or a link that serves the object.

To add a store: write a factory taking a Kit and returning a StoreLab (the store built
from its config section, against its real service in the lab), then add one line to
IMPLEMENTATIONS below. Every check here then runs against it.

Each check is a plain function of a lab, so `test_a_broken_store_fails_the_check` can
run it against a deliberately broken store and show that it fails.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import httpx
import pytest

from daemon.backup.stores import BackupStore, BackupStoreError, Upload, create_store
from daemon.backup.stores.limits import MIN_PART_SIZE
from daemon.backup.stores.local import LocalStore, LocalUpload
from daemon.backup.stores.s3 import S3BackupStore
from daemon.config.schema import LocalStore as LocalStoreConfig
from daemon.config.schema import S3Store
from daemon.domain.errors import LapseError
from tests.contracts.kit import Kit, check_fails
from tests.lab.backup_helpers import s3_store
from tests.lab.services.s3 import S3Server


@dataclass
class StoreLab:
    """A store to check, and what it can do: protect objects (`protects`), give links a
    client can download with (`links`)."""

    store: BackupStore
    protects: bool
    links: bool


def local(kit: Kit) -> StoreLab:
    """A directory on this machine; protecting makes objects read-only."""
    config = LocalStoreConfig(type="local", path=kit.tmp_path / "backups")
    return StoreLab(create_store(config), protects=True, links=False)


def _s3(kit: Kit, *, object_lock: bool, prefix: str = "") -> BackupStore:
    """A fresh bucket of the lab's S3 server (with Object Lock, which turns versioning on,
    when asked), reached with credentials read from files as the config names them."""
    s3: S3Server = kit.service("s3")
    bucket = f"contract-{secrets.token_hex(6)}"
    _admin(s3).create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=object_lock)
    settings = _s3_settings(kit, s3.endpoint_url, bucket, s3.access_key, s3.secret_key)
    return create_store(S3Store.model_validate(settings | {"prefix": prefix}))


def _s3_settings(kit: Kit, endpoint: str, bucket: str, key: str, secret: str) -> dict[str, Any]:
    """A [backup.store] table for `bucket` at `endpoint`, its credentials in files."""
    (kit.tmp_path / "s3-key").write_text(key)
    (kit.tmp_path / "s3-secret").write_text(secret)
    credentials = {
        "access_key_id": {"file": str(kit.tmp_path / "s3-key")},
        "secret_access_key": {"file": str(kit.tmp_path / "s3-secret")},
    }
    return s3_store(endpoint, bucket, upload_concurrency=2, **credentials)


_ADMIN_CLIENTS: dict[str, Any] = {}


def _admin(s3: S3Server) -> Any:
    """One boto3 client per lab S3 server for making buckets (a client costs half a second)."""
    if s3.endpoint_url not in _ADMIN_CLIENTS:
        _ADMIN_CLIENTS[s3.endpoint_url] = s3.client()
    return _ADMIN_CLIENTS[s3.endpoint_url]


def s3_object_lock(kit: Kit) -> StoreLab:
    """A bucket with Object Lock, under a key prefix: protecting locks the object's version."""
    return StoreLab(_s3(kit, object_lock=True, prefix="lapse/"), protects=True, links=True)


def s3_plain(kit: Kit) -> StoreLab:
    """A bucket without Object Lock or versions: nothing can be protected."""
    return StoreLab(_s3(kit, object_lock=False), protects=False, links=True)


# One entry per store: a factory taking a Kit and returning its StoreLab.
IMPLEMENTATIONS = [
    pytest.param(local, id="local"),
    pytest.param(s3_object_lock, id="s3-object-lock"),
    pytest.param(s3_plain, id="s3"),
]


@pytest.fixture(params=IMPLEMENTATIONS)
def lab(request: pytest.FixtureRequest, kit: Kit) -> StoreLab:
    factory: Callable[[Kit], StoreLab] = request.param
    return factory(kit)


# Every byte value, a NUL among them, and a tail that is no whole line.
SMALL = bytes(range(256)) * 3 + b"\x00end"


def exists(store: BackupStore, key: str) -> bool:
    """Whether `key` can be opened in `store` (a missing key raises BackupStoreError)."""
    try:
        store.open(key).close()
    except BackupStoreError:
        return False
    return True


def read_in_chunks(store: BackupStore, key: str, version: str | None = None) -> bytes:
    """Read `key` through `open`, in small chunks as the verifier reads."""
    stream = store.open(key, version)
    try:
        chunks = []
        while chunk := stream.read(1000):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        stream.close()


# --- the checks ------------------------------------------------------------------------


def check_reads_back_what_was_put(lab: StoreLab) -> None:
    lab.store.put("acct-1/b1/manifest.json", SMALL)
    lab.store.put("acct-1/b1/empty.sql", b"")

    assert lab.store.read("acct-1/b1/manifest.json") == SMALL
    assert read_in_chunks(lab.store, "acct-1/b1/manifest.json") == SMALL
    assert lab.store.read("acct-1/b1/empty.sql") == b""


def check_a_streamed_upload_arrives_whole(lab: StoreLab) -> None:
    # Two parts (S3 parts are at least 5 MiB), written in pieces that straddle them.
    data = os.urandom(MIN_PART_SIZE + 4097)
    cuts = [0, 1, 1000, MIN_PART_SIZE - 1, MIN_PART_SIZE + 1, len(data)]

    upload = lab.store.begin_upload("acct-1/b1/files-1.tar.zst", part_size=MIN_PART_SIZE)
    for start, end in itertools.pairwise(cuts):
        upload.write(data[start:end])
    upload.complete()

    stored = read_in_chunks(lab.store, "acct-1/b1/files-1.tar.zst")
    assert len(stored) == len(data)
    assert stored == data
    # A dump of an empty database: an upload with nothing written is an empty object.
    empty = lab.store.begin_upload("acct-1/b1/empty.sql", part_size=MIN_PART_SIZE)
    empty.complete()
    assert lab.store.read("acct-1/b1/empty.sql") == b""


def check_an_upload_is_visible_only_when_completed(lab: StoreLab) -> None:
    lab.store.put("acct-1/b1/history.json", b"the old history")

    fresh = lab.store.begin_upload("acct-1/b1/files-1.tar.zst", part_size=MIN_PART_SIZE)
    fresh.write(SMALL)
    again = lab.store.begin_upload("acct-1/b1/history.json", part_size=MIN_PART_SIZE)
    again.write(b"the new history")

    assert not exists(lab.store, "acct-1/b1/files-1.tar.zst")
    assert lab.store.read("acct-1/b1/history.json") == b"the old history"
    fresh.complete()
    again.complete()
    assert lab.store.read("acct-1/b1/files-1.tar.zst") == SMALL
    assert lab.store.read("acct-1/b1/history.json") == b"the new history"


def check_an_aborted_upload_leaves_nothing(lab: StoreLab) -> None:
    upload = lab.store.begin_upload("acct-1/b1/files-1.tar.zst", part_size=MIN_PART_SIZE)
    upload.write(SMALL)

    upload.abort()

    assert not exists(lab.store, "acct-1/b1/files-1.tar.zst")
    assert lab.store.abort_incomplete("acct-1/") == 0
    assert lab.store.delete_prefix("acct-1/") == 0


def check_uploads_cut_short_are_removed_by_prefix(lab: StoreLab) -> None:
    crashed: list[Upload] = []
    for account in ("acct-1", "acct-2"):
        upload = lab.store.begin_upload(f"{account}/b1/files-1.tar.zst", part_size=MIN_PART_SIZE)
        upload.write(SMALL)
        crashed.append(upload)  # neither completed nor aborted: the daemon died here
    try:
        assert lab.store.abort_incomplete("acct-1/") == 1
        assert lab.store.abort_incomplete("acct-1/") == 0
        assert lab.store.abort_incomplete("acct-2/") == 1
        assert not exists(lab.store, "acct-1/b1/files-1.tar.zst")
    finally:
        for upload in crashed:
            upload.abort()  # let go of what the dead upload held open


def check_delete_prefix_deletes_exactly_what_is_under_it(lab: StoreLab) -> None:
    keys = ["acct-1/b1/a.tar", "acct-1/b1/sub/b.sql", "acct-1/b10/c.tar", "acct-2/b1/d.tar"]
    for key in keys:
        lab.store.put(key, key.encode())

    assert lab.store.delete_prefix("acct-1/b1/") == 2

    assert [key for key in keys if exists(lab.store, key)] == keys[2:]
    assert lab.store.read("acct-1/b10/c.tar") == b"acct-1/b10/c.tar"
    assert lab.store.delete_prefix("acct-1/b1/") == 0


def check_a_missing_object_is_named_and_deleting_it_is_fine(lab: StoreLab) -> None:
    key = "acct-1/b1/none.tar"
    lab.store.put("acct-1/b1/other.tar", SMALL)

    with pytest.raises(BackupStoreError) as missing:
        lab.store.open(key)
    assert isinstance(missing.value, LapseError)
    assert lab.store.describe(key) in str(missing.value)
    with pytest.raises(BackupStoreError):
        lab.store.read(key)
    with pytest.raises(BackupStoreError):
        lab.store.pin(key)
    try:
        lab.store.delete(key)
    except BackupStoreError as error:
        pytest.fail(f"deleting a missing object raised: {error}")


def check_delete_removes_the_object(lab: StoreLab) -> None:
    lab.store.put("acct-1/b1/a.tar", SMALL)
    lab.store.put("acct-1/b1/b.tar", SMALL)

    lab.store.delete("acct-1/b1/a.tar")

    assert not exists(lab.store, "acct-1/b1/a.tar")
    assert lab.store.read("acct-1/b1/b.tar") == SMALL


def check_a_protected_object_survives_being_written_over(lab: StoreLab) -> None:
    key = "acct-1/b1/files-1.tar.zst"
    lab.store.put(key, SMALL)
    version = lab.store.pin(key)
    until = datetime.now(UTC) + timedelta(days=1)

    assert lab.store.protect(key, version, until) is lab.protects

    if lab.protects:
        # Refused outright (a read-only file) is as good as a new version beside it.
        with contextlib.suppress(BackupStoreError):
            lab.store.put(key, b"other bytes")
        assert read_in_chunks(lab.store, key, version) == SMALL


def check_a_download_link_serves_the_object(lab: StoreLab) -> None:
    lab.store.put("acct-1/b1/files-1.tar.zst", SMALL)

    url = lab.store.download_url("acct-1/b1/files-1.tar.zst", timedelta(hours=1))

    assert (url is not None) is lab.links
    if url is not None:
        response = httpx.get(url, timeout=10)
        assert response.status_code == 200
        assert response.content == SMALL


# --- the contract, run against every store ---------------------------------------------


def test_what_is_put_is_read_back_byte_for_byte(lab: StoreLab) -> None:
    check_reads_back_what_was_put(lab)


def test_a_streamed_upload_of_several_parts_arrives_whole(lab: StoreLab) -> None:
    check_a_streamed_upload_arrives_whole(lab)


def test_an_upload_is_visible_only_when_completed(lab: StoreLab) -> None:
    check_an_upload_is_visible_only_when_completed(lab)


def test_an_aborted_upload_leaves_nothing(lab: StoreLab) -> None:
    check_an_aborted_upload_leaves_nothing(lab)


def test_uploads_cut_short_by_a_crash_are_removed_by_prefix(lab: StoreLab) -> None:
    check_uploads_cut_short_are_removed_by_prefix(lab)


def test_delete_prefix_deletes_exactly_what_is_under_it(lab: StoreLab) -> None:
    check_delete_prefix_deletes_exactly_what_is_under_it(lab)


def test_a_missing_object_raises_naming_it_and_deleting_it_is_fine(lab: StoreLab) -> None:
    check_a_missing_object_is_named_and_deleting_it_is_fine(lab)


def test_delete_removes_the_object_and_only_it(lab: StoreLab) -> None:
    check_delete_removes_the_object(lab)


def test_a_protected_object_survives_being_written_over(lab: StoreLab) -> None:
    check_a_protected_object_survives_being_written_over(lab)


def test_a_download_link_serves_the_object(lab: StoreLab) -> None:
    check_a_download_link_serves_the_object(lab)


def test_an_unreachable_store_raises_backup_store_error(kit: Kit) -> None:
    """The S3 store with nothing at its endpoint: its errors are the store's, not boto's."""
    settings = _s3_settings(kit, "http://127.0.0.1:1", "gone", "key", "secret")
    # quick: one try, where the daemon's store would retry a while before giving up.
    store = S3BackupStore(S3Store.model_validate(settings), quick=True)
    with pytest.raises(BackupStoreError, match=r"s3://gone/acct-1/b1/a\.tar"):
        store.put("acct-1/b1/a.tar", SMALL)
    with pytest.raises(BackupStoreError, match=r"s3://gone/acct-1/b1/a\.tar"):
        store.open("acct-1/b1/a.tar")


# --- the checks can fail ---------------------------------------------------------------


class _WritesInPlace(LocalUpload):
    """Writes straight to the object's own path: readers see it half written."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = self._partial = path
        self._file = path.open("wb")

    def complete(self) -> None:
        self._file.close()

    def abort(self) -> None:
        self._file.close()  # and what was written stays


class _VisibleAtOnce(LocalStore):
    def begin_upload(self, key: str, **options: Any) -> Upload:
        return _WritesInPlace(self._path(key))


class _LosesTheLastByte(LocalStore):
    def open(self, key: str, version: str | None = None) -> BinaryIO:
        with super().open(key, version) as stream:
            return io.BytesIO(stream.read()[:-1])


class _OpensNothingAsEmpty(LocalStore):
    def open(self, key: str, version: str | None = None) -> BinaryIO:
        try:
            return super().open(key, version)
        except BackupStoreError:
            return io.BytesIO()


class _DeletesSiblingsToo(LocalStore):
    """Deletes by name prefix, so 'acct-1/b1/' takes 'acct-1/b10/' along."""

    def delete_prefix(self, prefix: str) -> int:
        base = self._path(prefix.rstrip("/"))
        doomed = list(base.parent.glob(base.name + "*"))
        count = sum(path.is_file() for folder in doomed for path in folder.rglob("*"))
        for folder in doomed:
            shutil.rmtree(folder)
        return count


class _ProtectsNothing(LocalStore):
    def protect(self, key: str, version: str | None, until: datetime) -> bool:
        return True


@pytest.mark.parametrize(
    ("broken", "check"),
    [
        (_VisibleAtOnce, check_an_upload_is_visible_only_when_completed),
        (_VisibleAtOnce, check_an_aborted_upload_leaves_nothing),
        (_LosesTheLastByte, check_reads_back_what_was_put),
        (_LosesTheLastByte, check_a_streamed_upload_arrives_whole),
        (_OpensNothingAsEmpty, check_a_missing_object_is_named_and_deleting_it_is_fine),
        (_DeletesSiblingsToo, check_delete_prefix_deletes_exactly_what_is_under_it),
        (_ProtectsNothing, check_a_protected_object_survives_being_written_over),
    ],
)
def test_a_broken_store_fails_the_check(
    kit: Kit, broken: type[LocalStore], check: Callable[[StoreLab], None]
) -> None:
    lab = StoreLab(broken(kit.tmp_path / "backups"), protects=True, links=False)
    check_fails(lambda: check(lab))
