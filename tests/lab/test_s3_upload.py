"""The S3 store's multipart upload against the lab S3 server: content, part layout and
the bounded set of part buffers it cycles through."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
from typing import Any

import pytest

from daemon.backup.stores.base import BackupStoreError
from daemon.backup.stores.limits import MIN_PART_SIZE
from daemon.backup.stores.s3 import S3BackupStore
from daemon.config.schema import S3Store
from tests.lab.backup_helpers import s3_store
from tests.lab.services.s3 import S3Server


def _store(s3: S3Server, bucket: str, monkeypatch: pytest.MonkeyPatch) -> S3BackupStore:
    monkeypatch.setenv("LAPSE_TEST_S3_KEY", s3.access_key)
    monkeypatch.setenv("LAPSE_TEST_S3_SECRET", s3.secret_key)
    settings = s3_store(s3.endpoint_url, s3.create_bucket(bucket), upload_concurrency=2)
    return S3BackupStore(S3Store.model_validate(settings))


def _spy_on_parts(store: S3BackupStore) -> list[tuple[int, int, type]]:
    """Record (object id, length, type) of the body of every part the store sends, as
    it is sent (a buffer is reused afterwards); the real call still happens."""
    bodies: list[tuple[int, int, type]] = []
    send = store.client.upload_part

    def upload_part(**arguments: Any) -> Any:
        body = arguments["Body"]
        bodies.append((id(body), len(body), type(body)))
        return send(**arguments)

    store.client.upload_part = upload_part  # type: ignore[method-assign]
    return bodies


@pytest.mark.parametrize(
    ("read_ahead", "buffers"),
    [
        # A source without a part of its own read-ahead: a spare fills while two are up.
        (0, 3),
        # An SSH channel's window holds the next part: one buffer per part in flight.
        (MIN_PART_SIZE, 2),
    ],
)
def test_an_object_of_many_parts_arrives_whole_through_a_few_buffers(
    s3: S3Server, monkeypatch: pytest.MonkeyPatch, read_ahead: int, buffers: int
) -> None:
    store = _store(s3, "upload-parts", monkeypatch)
    bodies = _spy_on_parts(store)
    data = os.urandom(7 * MIN_PART_SIZE + 12345)
    # Writes that straddle part boundaries, one larger than two parts, and single bytes.
    cuts = [0, 1, 2, 3 * 1024 * 1024, 3 * 1024 * 1024 + 1, 14 * 1024 * 1024, len(data)]

    upload = store.begin_upload("acct/b1/files.tar", part_size=MIN_PART_SIZE, read_ahead=read_ahead)
    for start, end in itertools.pairwise(cuts):
        upload.write(data[start:end])
    upload.complete()

    stored = store.read("acct/b1/files.tar")
    assert len(stored) == len(data)
    assert stored == data
    sorted_parts = sorted(bodies, key=lambda body: -body[1])
    assert [length for _id, length, _type in sorted_parts] == [MIN_PART_SIZE] * 7 + [12345]
    # Eight parts, never more buffers than parts in flight (and the spare).
    assert len({identity for identity, _length, _type in bodies}) <= buffers
    # Parts go out as bytearrays, which the HTTP client sends without a copy.
    assert {kind for _id, _length, kind in bodies} == {bytearray}


@pytest.mark.parametrize("read_ahead", [0, MIN_PART_SIZE])
def test_a_refused_part_fails_the_upload_and_leaves_no_parts(
    s3: S3Server, monkeypatch: pytest.MonkeyPatch, read_ahead: int
) -> None:
    store = _store(s3, "upload-refused", monkeypatch)
    send = store.client.upload_part

    def refuse_the_third(**arguments: Any) -> Any:
        if arguments["PartNumber"] == 3:
            arguments["UploadId"] = "no-such-upload"
        return send(**arguments)

    store.client.upload_part = refuse_the_third  # type: ignore[method-assign]
    upload = store.begin_upload("acct/b1/files.tar", part_size=MIN_PART_SIZE, read_ahead=read_ahead)
    chunk = os.urandom(1024 * 1024)
    with pytest.raises(
        BackupStoreError, match=re.escape("part 3 of s3://upload-refused/acct/b1/files.tar")
    ):
        # The failure surfaces when a buffer is next taken or at completion; either way
        # the writer is never left waiting for a buffer that does not come back.
        for _ in range(12 * MIN_PART_SIZE // len(chunk)):
            upload.write(chunk)
        upload.complete()
    upload.abort()
    uploads = store.client.list_multipart_uploads(Bucket="upload-refused")
    assert uploads.get("Uploads", []) == []


def test_the_store_reads_and_writes_without_loading_boto3(
    s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store's client comes from botocore alone: boto3's resources and its transfer
    manager (s3transfer) cost every command that reads the store 0.05-0.1 s of start-up
    and are not used. A fresh interpreter writes, lists and reads an object, then says
    which of them it loaded."""
    monkeypatch.setenv("LAPSE_TEST_S3_KEY", s3.access_key)
    monkeypatch.setenv("LAPSE_TEST_S3_SECRET", s3.secret_key)
    settings = s3_store(s3.endpoint_url, s3.create_bucket("botocore-only"))
    script = f"""
import sys
from daemon.backup.stores.s3 import S3BackupStore
from daemon.config.schema import S3Store
store = S3BackupStore(S3Store.model_validate({settings!r}))
store.put("a/object", b"written by botocore alone")
read = store.open("a/object").read()
print(read.decode(), store.delete_prefix("a/"))
print(sorted(m for m in ("boto3", "s3transfer") if m in sys.modules))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["written by botocore alone 1", "[]"]
