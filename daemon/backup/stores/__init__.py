"""Backup stores: a local directory or an S3-compatible bucket, behind one interface."""

from __future__ import annotations

from daemon.backup.stores.base import BackupStore, BackupStoreError, Readable, Upload
from daemon.backup.stores.local import LocalStore
from daemon.config.schema import LocalStore as LocalStoreConfig
from daemon.config.schema import StoreConfig

__all__ = ["BackupStore", "BackupStoreError", "Readable", "Upload", "create_store"]


def create_store(config: StoreConfig) -> BackupStore:
    """Build the store the config names (no network access yet)."""
    if isinstance(config, LocalStoreConfig):
        return LocalStore(config.path)
    # boto3 is loaded only when a bucket is configured: some 10 MB of memory and 0.2 s
    # of start-up that a daemon (or a CLI command) with a local store need not pay.
    from daemon.backup.stores.s3 import S3BackupStore

    return S3BackupStore(config)
