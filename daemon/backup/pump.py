"""Moving a command's output into a store upload, hashing it on the way."""

from __future__ import annotations

import hashlib

from daemon.backup.stores.base import Upload
from daemon.transport.base import RemoteProcess

# Few enough calls per 8 MiB part for their Python cost not to show, and small enough
# for the allocator to reuse one block per read: reads as large as the SSH window
# returned blocks of every size up to 8 MiB, which glibc kept in pieces (40 MB of a
# backup's peak). 1 MiB reads stream as fast as 2 and 8 MiB ones (bench/backup.py).
CHUNK = 1 << 20


def pump(process: RemoteProcess, upload: Upload) -> tuple[int, str]:
    """Copy `process`'s stdout into `upload` until its end.

    Returns (bytes copied, their hex SHA-256). Raises TransportError or BackupStoreError
    from either side; the caller aborts the upload and kills the process.
    """
    digest = hashlib.sha256()
    size = 0
    while data := process.read(CHUNK):
        digest.update(data)
        size += len(data)
        upload.write(data)
    return size, digest.hexdigest()
