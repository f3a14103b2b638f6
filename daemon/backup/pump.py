"""Moving a command's output into a store upload, hashing it on the way."""

from __future__ import annotations

import hashlib

from daemon.backup.stores.base import Upload
from daemon.transport.base import RemoteProcess

CHUNK = 1 << 20


def pump(process: RemoteProcess, upload: Upload) -> tuple[int, str]:
    """Copy `process`'s stdout into `upload` until its end.

    Returns (bytes copied, their hex SHA-256). Raises TransportError or StoreError
    from either side; the caller aborts the upload and kills the process.
    """
    digest = hashlib.sha256()
    size = 0
    while data := process.read(CHUNK):
        digest.update(data)
        size += len(data)
        upload.write(data)
    return size, digest.hexdigest()
