"""Moving a command's output into a store upload, hashing it on the way."""

from __future__ import annotations

import hashlib

from daemon.backup.stores.base import Upload
from daemon.transport.base import RemoteProcess

# paramiko hands out the front of its buffer and moves the rest up, so small reads
# from a full 8 MiB window copy it over and over (64 KiB reads slowed an upload to a
# third). 1 MiB reads cost nothing measurable (bench/backup.py) and, unlike reads as
# large as the window, stay small enough for the allocator to reuse one block rather
# than scatter 8 MiB ones: a backup's peak memory fell by 40 MB with them.
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
