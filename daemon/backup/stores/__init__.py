"""Backup stores: a local directory or an S3-compatible bucket, behind one interface."""

from __future__ import annotations

from functools import partial

from daemon.backup.stores.base import BackupStore, BackupStoreError, Readable, Upload
from daemon.backup.stores.deferred import DeferredStore
from daemon.backup.stores.local import LocalStore
from daemon.config.schema import LocalStore as LocalStoreConfig
from daemon.config.schema import StoreConfig

__all__ = [
    "BackupStore",
    "BackupStoreError",
    "Readable",
    "Upload",
    "create_store",
    "deferred_store",
]


def create_store(config: StoreConfig) -> BackupStore:
    """Build the store the config names (no network access yet)."""
    if isinstance(config, LocalStoreConfig):
        return LocalStore(config.path)
    # botocore is loaded only when a bucket is configured: some 10 MB of memory and 0.2 s
    # of start-up that a daemon (or a CLI command) with a local store need not pay.
    from daemon.backup.stores.s3 import S3BackupStore

    return S3BackupStore(config)


def deferred_store(config: StoreConfig) -> BackupStore:
    """Return the store the config names, built only when first used (daemon.backup.stores.
    deferred); a local store, cheap to build, is built now.

    Reads the store's secrets now, so that an unreadable one is refused before the
    caller starts anything, as `create_store` would. Raises SecretError.
    """
    if isinstance(config, LocalStoreConfig):
        return LocalStore(config.path)
    for secret in (config.access_key_id, config.secret_access_key):
        if secret is not None:
            secret.reveal()
    return DeferredStore(config.type, partial(create_store, config))
