"""Choosing the multipart part size from how large an archive is expected to be.

S3 allows at most 10,000 parts, so the part size caps the largest archive. It is
chosen before the upload starts, from the source's measured size, so a too-large
source fails at once with a clear error rather than at part 10,001 hours later.
"""

from __future__ import annotations

import math

from daemon.backup.stores.limits import MAX_PART_SIZE, MAX_PARTS
from daemon.domain.errors import LapseError

MIB = 1024 * 1024
# Small enough to keep memory low (concurrency x part, see S3Upload), large enough for
# throughput.
DEFAULT_PART_SIZE = 8 * MIB
# A dump's size is not measured beforehand; 16 MiB parts allow dumps up to 156 GiB.
DATABASE_PART_SIZE = 16 * MIB
# Room for tar headers and padding, and for files that grow while they are read.
_HEADROOM = 1.25


class TooLargeError(LapseError, ValueError):
    """A source is larger than the largest object a multipart upload can hold."""


def part_size_for(expected_bytes: int) -> int:
    """Return the part size (a whole number of MiB) for an object of about `expected_bytes`.

    Raises TooLargeError when even the largest part size could not hold it.
    """
    needed = math.ceil(expected_bytes * _HEADROOM / MAX_PARTS)
    size = max(DEFAULT_PART_SIZE, math.ceil(needed / MIB) * MIB)
    if size > MAX_PART_SIZE:
        raise TooLargeError(
            f"{expected_bytes} bytes is more than one S3 object can hold "
            f"({MAX_PARTS} parts of at most {MAX_PART_SIZE // MIB} MiB)"
        )
    return size
