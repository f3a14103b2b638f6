"""A store built on its first use: once, with its secrets read up front."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest

from daemon.backup.stores import deferred_store
from daemon.backup.stores.base import BackupStore
from daemon.backup.stores.deferred import DeferredStore
from daemon.backup.stores.local import LocalStore
from daemon.config.schema import LocalStore as LocalStoreConfig
from daemon.config.schema import S3Store
from daemon.config.secrets import SecretError, SecretRef


def test_the_store_is_built_at_its_first_use_and_only_once(tmp_path: Path) -> None:
    built: list[BackupStore] = []

    def build() -> BackupStore:
        built.append(LocalStore(tmp_path))
        return built[-1]

    store = DeferredStore("local", build)
    assert (store.kind, built) == ("local", [])
    callers = [threading.Thread(target=store.put, args=(f"a/{n}", b"x")) for n in range(4)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    assert len(built) == 1
    assert store.read("a/3") == b"x"
    assert store.describe("a/3") == built[0].describe("a/3")
    assert store.download_url("a/3", timedelta(hours=1)) is None
    assert store.delete_prefix("a/") == 4
    assert len(built) == 1


def test_a_failing_build_is_raised_at_the_first_use_and_tried_again_after() -> None:
    attempts: list[int] = []

    def build() -> BackupStore:
        attempts.append(1)
        raise SecretError("environment variable S3_KEY is not set")

    store = DeferredStore("s3", build)
    for _ in range(2):
        with pytest.raises(SecretError, match="S3_KEY is not set"):
            store.open("a/b")
    assert len(attempts) == 2


def test_an_unreadable_secret_of_a_bucket_is_refused_before_anything_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LAPSE_NO_SUCH_KEY", raising=False)
    config = S3Store(
        type="s3",
        bucket="backups",
        access_key_id=SecretRef(env="LAPSE_NO_SUCH_KEY"),
        secret_access_key=SecretRef(env="LAPSE_NO_SUCH_KEY"),
    )
    with pytest.raises(SecretError, match="LAPSE_NO_SUCH_KEY"):
        deferred_store(config)


def test_a_bucket_is_deferred_and_a_local_store_built_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAPSE_TEST_KEY", "key")
    bucket = deferred_store(
        S3Store(type="s3", bucket="backups", access_key_id=SecretRef(env="LAPSE_TEST_KEY"))
    )
    assert isinstance(bucket, DeferredStore) and bucket.kind == "s3"
    local = deferred_store(LocalStoreConfig(type="local", path=tmp_path))
    assert isinstance(local, LocalStore)
