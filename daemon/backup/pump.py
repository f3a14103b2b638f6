"""Moving a command's output into a store upload, hashing it on the way."""

from __future__ import annotations

import hashlib

from daemon.backup.stores.base import Upload
from daemon.transport.base import RemoteProcess

# As large as the SSH channel window: paramiko hands out the front of its buffer and
# then moves the rest to the front, so reading less than it holds costs a copy of
# the whole buffer on every read (an upload slowed to a third by it here).
CHUNK = 8 << 20


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
