"""A restore's head start (daemon.backup.head_start): the host's session and the store's
answers begun before the restore knows it needs them, taken only for the very host and
key the restore arrives at itself, and ended untouched otherwise."""

from __future__ import annotations

import copy
import dataclasses
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from daemon.backup.errors import BackupError
from daemon.backup.head_start import WAITING_SCRIPT, FirstArchive, HeadStart, first_archive, given
from daemon.backup.manifest import PANEL_ARCHIVE
from daemon.backup.restore import RestoreRequest, restore_backup
from daemon.backup.stores import deferred_store
from daemon.backup.stores.base import BackupStore, Readable
from daemon.backup.stores.deferred import DeferredStore
from daemon.domain.states import BackupStatus
from daemon.runtime import restore_ahead
from daemon.transport import Transport, Transports
from tests.lab.backup_helpers import tree_fingerprint
from tests.lab.restore_scene import RestoreScene, deface


class _Watched:
    """What the scene's store was asked to open and which scripts its hosts were given,
    each with the thread that did it."""

    def __init__(self) -> None:
        self.opened: list[tuple[str, str]] = []
        self.started: list[tuple[str, str]] = []


def _watch(scene: RestoreScene, monkeypatch: pytest.MonkeyPatch) -> _Watched:
    watched = _Watched()
    store = scene.app.backups.store
    open_store = store.open

    def opened(key: str, version: str | None = None) -> Readable:
        watched.opened.append((key, threading.current_thread().name))
        return open_store(key, version)

    monkeypatch.setattr(store, "open", opened)
    for name in ("web1", "web2"):
        transport = scene.app.transports.get(name)
        _watch_transport(transport, name, watched, monkeypatch)
    return watched


def _watch_transport(
    transport: Transport, name: str, watched: _Watched, monkeypatch: pytest.MonkeyPatch
) -> None:
    start_bulk = transport.start_bulk

    @contextmanager
    def started(script: str, label: str) -> Iterator[Any]:
        kind = "waiting" if script == WAITING_SCRIPT else "own"
        watched.started.append((f"{name}:{kind}", threading.current_thread().name))
        with start_bulk(script, label) as process:
            yield process

    monkeypatch.setattr(transport, "start_bulk", started)


def _ahead(scene: RestoreScene, answer: Callable[[], FirstArchive | None]) -> HeadStart:
    return HeadStart(answer, scene.app.backups.store, scene.app.transports)


def _restore_defaced(
    scene: RestoreScene,
    answer: Callable[[], FirstArchive | None],
    after: Callable[[], None] = lambda: None,
) -> None:
    """Deface the site, then restore it over the backup service as `lapse restore` has it
    (the head start's store), with a head start on `answer`; call `after` before the head
    start is closed."""
    deface(scene.docroot)
    head = _ahead(scene, answer)
    service = copy.copy(scene.app.backups)
    service.store = head.store
    try:
        restore_backup(service, RestoreRequest(scene.backup.id, force=True), ahead=head)
        after()
    finally:
        head.close()


def test_the_restore_takes_the_session_and_the_answers_begun_ahead(
    scene: RestoreScene, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = tree_fingerprint(scene.docroot)
    first = first_archive(scene.backup)
    assert first is not None
    assert first.list_key is not None
    watched = _watch(scene, monkeypatch)
    _restore_defaced(scene, lambda: first)

    assert tree_fingerprint(scene.docroot) == original
    assert scene.leftovers() == []
    # The extraction ran in the session started ahead; only the swap started its own.
    assert [who for who, _thread in watched.started] == ["web1:waiting", "web1:own"]
    assert watched.started[0][1] == "lapse-head-start"
    # The list and the archive were each asked for once, by the head start.
    assert sorted(watched.opened) == sorted(
        [(first.list_key, "lapse-head-start"), (first.key, "lapse-head-start")]
    )


def test_a_head_start_on_another_host_and_key_is_not_taken(
    scene: RestoreScene, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An answer that is not what the restore arrives at (the database changed between
    the two looks, or the child is wrong) gives the restore nothing: it connects and asks
    for its own archive, and the session begun on the other host ends having run nothing."""
    original = tree_fingerprint(scene.docroot)
    first = first_archive(scene.backup)
    assert first is not None
    # Another object of the same backup, which the store does hold.
    stray = FirstArchive("web2", f"acct-1/{scene.backup.id}/manifest.json")
    watched = _watch(scene, monkeypatch)
    (scene.www.parent / "web2").mkdir()
    _restore_defaced(scene, lambda: stray)

    assert tree_fingerprint(scene.docroot) == original
    assert scene.leftovers() == []
    assert list((scene.www.parent / "web2").iterdir()) == []
    assert [who for who, _thread in watched.started] == ["web2:waiting", "web1:own", "web1:own"]
    own = [key for key, thread in watched.opened if thread != "lapse-head-start"]
    assert first.key in own


def _late(
    first: FirstArchive | None,
) -> tuple[threading.Event, Callable[[], FirstArchive | None]]:
    """An answer that comes only once the returned event is set."""
    released = threading.Event()

    def late() -> FirstArchive | None:
        released.wait(30)
        return first

    return released, late


def test_an_answer_not_in_when_the_restore_needs_it_is_given_up(
    scene: RestoreScene, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow answer is not waited for: the restore goes on alone, and what is answered
    afterwards begins nothing."""
    original = tree_fingerprint(scene.docroot)
    released, late = _late(first_archive(scene.backup))
    watched = _watch(scene, monkeypatch)

    def answered_late() -> None:
        released.set()
        time.sleep(0.5)

    _restore_defaced(scene, late, answered_late)

    assert tree_fingerprint(scene.docroot) == original
    assert [thread for _who, thread in watched.started] == ["MainThread", "MainThread"]
    assert [thread for _key, thread in watched.opened if thread == "lapse-head-start"] == []


def test_a_session_nobody_takes_ends_having_run_nothing(
    scene: RestoreScene, tmp_path: Path
) -> None:
    """Closed before the restore took it (an error, a refusal, Ctrl-C), the session has
    read no script; the host ends it at the end of its input."""
    first = first_archive(scene.backup)
    assert first is not None
    head = _ahead(scene, lambda: first)
    head.claim_body(first.key)  # waits until everything was begun
    session = head._session
    assert session is not None
    ended = threading.Thread(target=session.wait)
    ended.start()
    ended.join(2)
    assert ended.is_alive()  # it waits for a script as long as nobody ends it
    head.close()
    ended.join(10)
    assert not ended.is_alive()
    assert scene.leftovers() == []


def _run_waiting(transport: Transport, data: bytes) -> tuple[int, bytes]:
    with transport.start_bulk(WAITING_SCRIPT, "waiting") as process:
        process.write(data)
        result = process.run_to_end()
    return result.status, result.stdout


def test_a_waiting_session_runs_a_whole_script_only_and_hands_it_the_rest(
    scene: RestoreScene, tmp_path: Path
) -> None:
    """Through the host's own bash (over the lab's sshd for ssh+s3): the script up to its
    NUL runs, reading the bytes after it as its input, byte for byte; a script cut before
    its NUL, or no script, runs nothing; a script with a NUL in it is refused here."""
    transport = scene.app.transports.get("web1")
    marker = scene.www / "ran"
    rest = bytes(range(256)) * 64 + b"\0tail"
    status, out = _run_waiting(transport, given(f"touch {marker}; cat; echo; echo done") + rest)
    assert (status, marker.exists()) == (0, True)
    assert out == rest + b"\ndone\n"
    marker.unlink()
    cut = given(f"touch {marker}")[:-1]
    assert _run_waiting(transport, cut) == (0, b"")
    assert _run_waiting(transport, b"") == (0, b"")
    assert not marker.exists()
    with pytest.raises(ValueError, match="NUL"):
        given("echo a\0touch b")


def test_the_first_archive_is_the_one_the_restore_streams_first(scene: RestoreScene) -> None:
    first = first_archive(scene.backup)
    assert first is not None
    assert scene.backup.manifest is not None
    entry = next(o for o in scene.backup.manifest.objects if o.kind == "files")
    assert first == FirstArchive(
        "web1",
        f"acct-1/{scene.backup.id}/{entry.name}",
        f"acct-1/{scene.backup.id}/{entry.name}.members.json.zst",
    )
    assert first_archive(scene.backup, "web2") == FirstArchive("web2", first.key, first.list_key)
    unverified = dataclasses.replace(scene.backup, verification=None)
    assert first_archive(unverified) == FirstArchive("web1", first.key, None)
    corrupt = dataclasses.replace(scene.backup, status=BackupStatus.CORRUPT)
    assert first_archive(corrupt) is None
    manifest = copy.deepcopy(scene.backup.manifest)
    manifest.objects = [o for o in manifest.objects if o.kind != "files"]
    databases_only = dataclasses.replace(scene.backup, manifest=manifest)
    assert first_archive(databases_only) is None
    with_panel = copy.deepcopy(scene.backup.manifest)
    with_panel.objects.append(dataclasses.replace(entry, kind=PANEL_ARCHIVE, name="panel.tar"))
    panel = dataclasses.replace(scene.backup, manifest=with_panel)
    # Restored whole, the playbook restores it; narrowed (--files-only), the archive streams.
    assert first_archive(panel, whole=True) is None
    assert first_archive(panel, whole=False) == first


def test_a_session_ahead_that_failed_reports_the_hosts_own_reason(
    ssh_scene: RestoreScene,
) -> None:
    """A session started ahead whose connection was refused has ended before the restore
    hands it its script: the restore fails with ssh's own words, as it would have had it
    connected itself, and the live tree is untouched."""
    scene = ssh_scene
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    dead = scene.app.config.hosts["web1"].model_copy(update={"port": closed_port})
    transports = Transports({"web1": dead})
    first = first_archive(scene.backup)
    deface(scene.docroot)
    live = tree_fingerprint(scene.docroot)
    head = HeadStart(lambda: first, scene.app.backups.store, transports)
    service = copy.copy(scene.app.backups)
    service.store, service.transports = head.store, transports
    try:
        assert first is not None
        head.claim_body(first.key)  # everything begun; the refused ssh has ended by now
        time.sleep(0.5)
        with pytest.raises(BackupError) as caught:
            restore_backup(service, RestoreRequest(scene.backup.id, force=True), ahead=head)
    finally:
        head.close()
        transports.close()

    assert "Connection refused" in str(caught.value)
    assert "the live tree is untouched" in str(caught.value)
    assert tree_fingerprint(scene.docroot) == live
    assert scene.leftovers() == []


def test_the_session_starts_while_the_store_client_is_built(
    scene: RestoreScene, monkeypatch: pytest.MonkeyPatch
) -> None:
    """start_ahead builds the store client (an S3 store's botocore, a quarter of a second)
    while the child answers and the head start's thread starts the session: a build that
    waits for the session to start does not wait in vain."""
    config = scene.app.config
    transport_class = type(Transports(dict(config.hosts)).get("web1"))
    start_bulk = transport_class.start_bulk
    session_started = threading.Event()

    def started(self: Transport, script: str, label: str) -> Any:
        if script == WAITING_SCRIPT:
            session_started.set()
        return start_bulk(self, script, label)

    monkeypatch.setattr(transport_class, "start_bulk", started)
    seen_by_the_build: list[bool] = []

    def build() -> BackupStore:
        seen_by_the_build.append(session_started.wait(10))
        store = deferred_store(config.backup.store)
        return store.built if isinstance(store, DeferredStore) else store

    monkeypatch.setattr(
        restore_ahead, "deferred_store", lambda _config: DeferredStore("test", build)
    )
    head = restore_ahead.start_ahead(config, "acct-1", "latest", None, True)
    try:
        first = first_archive(scene.backup)
        assert first is not None
        assert head.claim_body(first.key) is not None
    finally:
        head.close()
    assert seen_by_the_build == [True]
