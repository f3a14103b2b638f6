"""S3's multipart limits, which decide part sizes before any upload (and before botocore
is loaded): at most 10,000 parts, each at least 5 MiB (but the last) and at most 5 GiB."""

from __future__ import annotations

MAX_PARTS = 10_000
MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PART_SIZE = 5 * 1024**3
