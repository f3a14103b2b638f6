"""Whether the backup store can protect a backup a deletion relied on, said at start.

S3 Object Lock can only be turned on when a bucket is created, so a bucket without it
is reported by `lapse check-config` and when the daemon starts, never found out at
the first deletion: with `object_lock = "preferred"` as a warning, with "required" as
an error (check-config fails, the daemon does not start). A local directory protects
with file modes (see daemon.backup.stores.local) and needs no check.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from daemon.backup.stores.base import BackupStoreError
from daemon.config.schema import S3Store, StoreConfig
from daemon.config.secrets import SecretError


@dataclass
class ProtectionReport:
    """What stands against the store protecting backups: errors and warnings, one line each."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def check_store_protection(store: StoreConfig) -> ProtectionReport:
    """Ask the bucket `store` (the config's `backup.store`) names whether it has Object
    Lock; return what is wrong.

    One quick request (5 s to connect, no retries). Never raises: a store that cannot
    be asked is itself reported.
    """
    report = ProtectionReport()
    if not isinstance(store, S3Store):
        return report
    from daemon.backup.stores.s3 import S3BackupStore  # botocore only with a bucket

    where = f"s3://{store.bucket}"
    try:
        mode = S3BackupStore(store, quick=True).object_lock_mode()
    except (BackupStoreError, SecretError) as error:
        problem = f"backup.store: cannot tell whether {where} has Object Lock: {error}"
    else:
        if mode is not None:
            return report
        problem = (
            f"backup.store: bucket {where} has no Object Lock, so a backup a deletion "
            "relied on can be deleted or overwritten in the store; create a bucket with "
            "Object Lock enabled and point backup.store.bucket at it"
        )
    if store.object_lock == "required":
        report.errors.append(problem + " (object_lock = required)")
    else:
        report.warnings.append(problem)
    return report
