"""A backup store in an S3-compatible bucket (AWS, MinIO, Ceph RGW, Wasabi, B2, R2).

Objects are written with multipart uploads fed straight from the backup stream
into a few part-sized buffers that are reused from part to part: memory stays at
upload_concurrency x the part size (one part more when the source cannot hold a
part of read-ahead itself) whatever the archive's size, and nothing is staged on
disk. A failed upload is aborted, so no orphaned parts are left to be
billed.
"""

from __future__ import annotations

import queue
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import botocore.session
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from daemon.backup.stores.base import BackupStore, BackupStoreError, Readable, Upload
from daemon.backup.stores.limits import MAX_PART_SIZE, MAX_PARTS, MIN_PART_SIZE
from daemon.config.schema import S3Store as S3StoreConfig

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef, ObjectLockRetentionTypeDef

_S3_ERRORS = (BotoCoreError, ClientError)


def _problem(error: BaseException) -> str:
    if isinstance(error, ClientError):
        detail = error.response.get("Error", {})
        return f"{detail.get('Code', 'error')}: {detail.get('Message', '')}".rstrip(": ")
    return str(error)


class S3Upload(Upload):
    """One multipart upload; parts go up on a small thread pool as they fill.

    Data is copied once, into a part buffer. A full buffer goes out as it is
    (botocore writes a bytearray body straight to the socket, where it would first
    join a bytes body to the request head, a copy of the whole part) and comes back
    for reuse once its part is up. So there are at most `concurrency` parts in
    flight, and no part-sized allocation per part for the allocator to scatter.

    With `spare_buffer` one more buffer fills while all are in flight, so the next
    part is ready the moment one finishes. Without it the source holds that part:
    an SSH channel's window takes in a part while the writer waits, and the freed
    buffer refills from it (in a median 25 ms against an 80-100 ms upload on the
    two-core lab, where the reader also waits for CPU). The spare would be an
    8 MiB copy of what the window already holds; end to end it was 1-7% faster in
    the lab, and the memory was the target that mattered (docs/benchmarks.md).
    """

    def __init__(
        self,
        store: S3BackupStore,
        key: str,
        part_size: int,
        extra: dict[str, Any],
        checksum: bool,
        spare_buffer: bool = True,
    ) -> None:
        self._store = store
        self._client = store.client
        self._bucket = store.bucket
        self._key = store.full_key(key)
        self._part_size = part_size
        self._checksum = checksum
        self._parts: list[tuple[int, Future[dict[str, Any]]]] = []
        # The first part to fail, set from the pool's threads: checked on every buffer
        # taken, so it must not cost a scan of all parts so far.
        self._failed: tuple[int, BaseException] | None = None
        concurrency = store.concurrency
        # Buffers are made as needed, up to one per part in flight (plus the spare);
        # taking one waits for a part to finish, which is what bounds memory.
        self._buffers_left = concurrency + spare_buffer
        self._free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        self._filling: bytearray | None = None
        self._filled = 0
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="s3-part")
        try:
            created = self._client.create_multipart_upload(
                Bucket=self._bucket, Key=self._key, **extra
            )
        except _S3_ERRORS as error:
            self._pool.shutdown()
            raise BackupStoreError(
                f"cannot start upload of {self.where}: {_problem(error)}"
            ) from error
        self._upload_id = created["UploadId"]

    @property
    def where(self) -> str:
        """The object's s3:// address."""
        return f"s3://{self._bucket}/{self._key}"

    def write(self, data: bytes) -> None:
        with memoryview(data) as view:
            offset = 0
            while offset < len(view):
                if self._filling is None:
                    self._filling = self._take_buffer()
                taken = min(self._part_size - self._filled, len(view) - offset)
                self._filling[self._filled : self._filled + taken] = view[offset : offset + taken]
                self._filled += taken
                offset += taken
                if self._filled == self._part_size:
                    self._submit(self._filling)
                    self._filling, self._filled = None, 0

    def _take_buffer(self) -> bytearray:
        """Return a free part buffer, waiting for a part in flight to finish when all
        are taken. Raises BackupStoreError when a part failed."""
        if self._buffers_left:
            self._buffers_left -= 1
            buffer = bytearray(self._part_size)
        else:
            buffer = self._free.get()
        self._raise_failed()
        return buffer

    def _submit(self, body: bytearray) -> None:
        number = len(self._parts) + 1
        if number > MAX_PARTS:
            raise BackupStoreError(
                f"{self.where} outgrew {MAX_PARTS} parts of {self._part_size} bytes: "
                "the archive is far larger than its source measured"
            )
        future = self._pool.submit(self._upload_part, number, body)
        future.add_done_callback(lambda done: self._part_done(number, body, done))
        self._parts.append((number, future))

    def _part_done(self, number: int, body: bytearray, done: Future[dict[str, Any]]) -> None:
        """Note the first failed part, then hand `body` back for reuse: whatever the
        outcome, the client is done with it once the call returns."""
        if not done.cancelled() and self._failed is None:
            error = done.exception()
            if error is not None:
                self._failed = (number, error)
        self._free.put(body)

    def _upload_part(self, number: int, body: bytearray) -> dict[str, Any]:
        extra: dict[str, Any] = {"ChecksumAlgorithm": "CRC32"} if self._checksum else {}
        response = self._client.upload_part(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            # botocore sends any bytes-like body; the stubs name bytes only.
            Body=body,  # type: ignore[arg-type]
            **extra,
        )
        part = {"PartNumber": number, "ETag": response["ETag"]}
        if self._checksum:
            part["ChecksumCRC32"] = response["ChecksumCRC32"]
        return part

    def _raise_failed(self) -> None:
        if self._failed is not None:
            number, error = self._failed
            raise BackupStoreError(
                f"upload of part {number} of {self.where} failed: {_problem(error)}"
            ) from error

    def complete(self) -> None:
        if self._filled or not self._parts:
            # The last part may be short; an empty object is one empty part.
            last = self._filling or bytearray()
            del last[self._filled :]
            self._submit(last)
            self._filling, self._filled = None, 0
        parts = []
        for number, future in self._parts:
            try:
                parts.append(future.result())
            except _S3_ERRORS as error:
                raise BackupStoreError(
                    f"upload of part {number} of {self.where} failed: {_problem(error)}"
                ) from error
        self._pool.shutdown()
        try:
            self._client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
            )
        except _S3_ERRORS as error:
            raise BackupStoreError(f"cannot complete {self.where}: {_problem(error)}") from error

    def abort(self) -> None:
        for _number, future in self._parts:
            future.cancel()
        self._pool.shutdown(wait=True)
        self._filling = None
        try:
            self._client.abort_multipart_upload(
                Bucket=self._bucket, Key=self._key, UploadId=self._upload_id
            )
        except _S3_ERRORS:
            # The server may be the thing that failed; `abort_incomplete` retries at the
            # next start, and a bucket lifecycle rule is the last line (see docs/backups.md).
            self._store.remember_orphan(self._key, self._upload_id)


class S3BackupStore(BackupStore):
    """Backups in one bucket under a key prefix."""

    kind = "s3"

    def __init__(self, config: S3StoreConfig, *, quick: bool = False) -> None:
        """Set up the client (no request yet); `quick`: one try and short timeouts, for
        a check that must answer at once. Raises SecretError for unreadable credentials."""
        self.bucket = config.bucket
        self.concurrency = config.upload_concurrency
        self._config = config
        self._prefix = config.prefix
        # botocore's own session, not boto3's: boto3 adds only resources and the transfer
        # manager (s3transfer), which Lapse does not use, and importing them cost 0.05-0.1 s
        # of every command that reads the store (a restore's first request waits for it).
        session = botocore.session.Session()
        self.client: S3Client = cast(
            "S3Client",
            session.create_client(
                "s3",
                region_name=config.region,
                endpoint_url=config.endpoint_url,
                aws_access_key_id=config.access_key_id.reveal() if config.access_key_id else None,
                aws_secret_access_key=(
                    config.secret_access_key.reveal() if config.secret_access_key else None
                ),
                config=BotoConfig(
                    # SigV4 everywhere: required by newer AWS regions and by KMS, and it
                    # makes download links carry their expiry.
                    signature_version="s3v4",
                    retries={"mode": "standard", "max_attempts": 1 if quick else 5},
                    connect_timeout=5 if quick else 10,
                    read_timeout=10 if quick else 120,
                    # Lapse hashes every object with SHA-256 itself; the SDK's default extra
                    # checksums are not understood by every S3-compatible server.
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                    max_pool_connections=max(10, config.upload_concurrency * 2),
                ),
            ),
        )
        self._lock_mode: str | bool | None = False  # False: not looked up yet
        self._orphans: list[tuple[str, str]] = []

    def full_key(self, key: str) -> str:
        """Return the bucket key for store key `key` (with the configured prefix)."""
        return self._prefix + key

    def describe(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.full_key(key)}"

    def object_lock_mode(self) -> str | None:
        """Return the bucket's Object Lock mode (GOVERNANCE or COMPLIANCE), or None when
        the bucket has no Object Lock. Looked up once."""
        if self._lock_mode is False:
            try:
                found = self.client.get_object_lock_configuration(Bucket=self.bucket)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") in (
                    "ObjectLockConfigurationNotFoundError",
                    "NoSuchObjectLockConfiguration",
                    "NotImplemented",
                ):
                    self._lock_mode = None
                    return None
                raise BackupStoreError(
                    f"cannot read the Object Lock setting of s3://{self.bucket}: {_problem(error)}"
                ) from error
            except BotoCoreError as error:
                raise BackupStoreError(f"cannot reach s3://{self.bucket}: {error}") from error
            lock = found.get("ObjectLockConfiguration", {})
            if lock.get("ObjectLockEnabled") != "Enabled":
                self._lock_mode = None
            else:
                rule = lock.get("Rule", {}).get("DefaultRetention", {})
                self._lock_mode = rule.get("Mode", "GOVERNANCE")
        return self._lock_mode  # type: ignore[return-value]

    def begin_upload(
        self,
        key: str,
        *,
        part_size: int,
        retain_until: datetime | None = None,
        read_ahead: int = 0,
    ) -> Upload:
        part_size = min(max(part_size, MIN_PART_SIZE), MAX_PART_SIZE)
        self._retry_orphans()
        extra = self._object_options(retain_until)
        if self._config.part_checksums:
            # The server checks each part as it arrives; a part damaged on the way is
            # refused and retried rather than stored.
            extra["ChecksumAlgorithm"] = "CRC32"
        return S3Upload(
            self,
            key,
            part_size,
            extra,
            checksum="ChecksumAlgorithm" in extra,
            spare_buffer=read_ahead < part_size,
        )

    def _object_options(self, retain_until: datetime | None) -> dict[str, Any]:
        """Return the encryption, storage class and Object Lock arguments for a new object."""
        extra: dict[str, Any] = {}
        if self._config.server_side_encryption:
            extra["ServerSideEncryption"] = self._config.server_side_encryption
            if self._config.kms_key_id:
                extra["SSEKMSKeyId"] = self._config.kms_key_id
        if self._config.storage_class:
            extra["StorageClass"] = self._config.storage_class
        mode = self.object_lock_mode() if retain_until is not None else None
        if mode is not None:
            extra["ObjectLockMode"] = mode
            extra["ObjectLockRetainUntilDate"] = retain_until
            # S3 requires an integrity checksum on writes to a locked bucket.
            extra["ChecksumAlgorithm"] = "CRC32"
        return extra

    def put(self, key: str, data: bytes, retain_until: datetime | None = None) -> None:
        """Write a small object (manifest, history) in one request. Raises BackupStoreError."""
        if len(data) > MIN_PART_SIZE:
            super().put(key, data, retain_until)
            return
        self._retry_orphans()
        extra = self._object_options(retain_until)
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.full_key(key), Body=data, **extra)
        except _S3_ERRORS as error:
            raise BackupStoreError(
                f"cannot write {self.describe(key)}: {_problem(error)}"
            ) from error

    def open(self, key: str, version: str | None = None) -> Readable:
        where = self.describe(key) + (f" (version {version})" if version else "")
        extra: dict[str, Any] = {"VersionId": version} if version else {}
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.full_key(key), **extra)
        except _S3_ERRORS as error:
            raise BackupStoreError(f"cannot read {where}: {_problem(error)}") from error
        return response["Body"]

    def pin(self, key: str) -> str | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.full_key(key))
        except _S3_ERRORS as error:
            raise BackupStoreError(
                f"cannot find {self.describe(key)}: {_problem(error)}"
            ) from error
        version = head.get("VersionId")
        # An unversioned bucket answers no id (or the literal "null").
        return version if version and version != "null" else None

    def protect(self, key: str, version: str | None, until: datetime) -> bool:
        mode = self.object_lock_mode()
        if mode is None or version is None:
            return False
        where = f"{self.describe(key)} (version {version})"
        try:
            head = self.client.head_object(
                Bucket=self.bucket, Key=self.full_key(key), VersionId=version
            )
            held = head.get("ObjectLockRetainUntilDate")
            if held is not None and held >= until:
                return True  # already held as long; a retention is never shortened
            self.client.put_object_retention(
                Bucket=self.bucket,
                Key=self.full_key(key),
                VersionId=version,
                Retention=cast(
                    "ObjectLockRetentionTypeDef", {"Mode": mode, "RetainUntilDate": until}
                ),
                ChecksumAlgorithm="CRC32",
            )
        except _S3_ERRORS as error:
            raise BackupStoreError(
                f"cannot lock {where} until {until:%Y-%m-%d}: {_problem(error)}"
            ) from error
        return True

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.full_key(key))
        except _S3_ERRORS as error:
            raise BackupStoreError(
                f"cannot delete {self.describe(key)}: {_problem(error)}"
            ) from error

    def delete_prefix(self, prefix: str) -> int:
        deleted = 0
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.full_key(prefix)):
                keys: list[ObjectIdentifierTypeDef] = [
                    {"Key": item["Key"]} for item in page.get("Contents", [])
                ]
                if not keys:
                    continue
                response = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True}
                )
                errors = response.get("Errors", [])
                if errors:
                    first = errors[0]
                    raise BackupStoreError(
                        f"cannot delete s3://{self.bucket}/{first.get('Key')}: "
                        f"{first.get('Code')}: {first.get('Message')}"
                    )
                deleted += len(keys)
        except _S3_ERRORS as error:
            raise BackupStoreError(
                f"cannot delete s3://{self.bucket}/{self.full_key(prefix)}*: {_problem(error)}"
            ) from error
        return deleted

    def download_url(self, key: str, expires: timedelta) -> str | None:
        name = key.rsplit("/", 1)[-1]
        try:
            return self.client.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": self.full_key(key),
                    "ResponseContentDisposition": f'attachment; filename="{name}"',
                },
                ExpiresIn=int(expires.total_seconds()),
            )
        except _S3_ERRORS as error:
            raise BackupStoreError(
                f"cannot sign a link to {self.describe(key)}: {error}"
            ) from error

    def remember_orphan(self, full_key: str, upload_id: str) -> None:
        """Note an upload whose abort failed, to abort again before the next upload."""
        self._orphans.append((full_key, upload_id))

    def _retry_orphans(self) -> None:
        """Abort uploads whose abort failed earlier (the server was down); keep those that
        still fail for the next try."""
        remaining = []
        for full_key, upload_id in self._orphans:
            try:
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=full_key, UploadId=upload_id
                )
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "NoSuchUpload":
                    remaining.append((full_key, upload_id))
            except BotoCoreError:
                remaining.append((full_key, upload_id))
        self._orphans = remaining

    def abort_incomplete(self, prefix: str) -> int:
        aborted = 0
        try:
            paginator = self.client.get_paginator("list_multipart_uploads")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.full_key(prefix)):
                for upload in page.get("Uploads", []):
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    aborted += 1
        except _S3_ERRORS as error:
            raise BackupStoreError(
                f"cannot clean up unfinished uploads in s3://{self.bucket}: {_problem(error)}"
            ) from error
        self._orphans.clear()
        return aborted
