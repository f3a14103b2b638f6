"""Backup stores: a local directory or an S3-compatible bucket, behind one interface."""

from __future__ import annotations

from daemon.backup.stores.base import BackupStore, Readable, StoreError, Upload
from daemon.backup.stores.local import LocalStore
from daemon.backup.stores.s3 import S3BackupStore
from daemon.config.schema import LocalStore as LocalStoreConfig
from daemon.config.schema import StoreConfig

__all__ = ["BackupStore", "Readable", "StoreError", "Upload", "create_store"]


def create_store(config: StoreConfig) -> BackupStore:
    """Build the store the config names (no network access yet)."""
    if isinstance(config, LocalStoreConfig):
        return LocalStore(config.path)
    return S3BackupStore(config)
