"""Restore extracts into staging beside the target, compares, and swaps: the tree rule,
--force, interrupts and lost links, and the record of every restore."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import daemon.backup.restore as restore_module
from daemon.backup import staging
from daemon.backup.errors import BackupError
from daemon.backup.restore import RestoreRequest, restore_backup
from daemon.backup.stores.base import BackupStoreError
from daemon.store.models import AuditEntry, Event
from daemon.transport.ssh import SSHTransport
from tests.lab.backup_helpers import tree_fingerprint
from tests.lab.restore_scene import RestoreScene


def _restore(scene: RestoreScene, **options: Any) -> restore_module.RestoreReport:
    return restore_backup(scene.app.backups, RestoreRequest(scene.backup.id, **options))


def _deface(docroot: Path) -> None:
    """What a site looks like some days after its backup: changed, removed, planted."""
    (docroot / "index.html").write_text("<h1>defaced</h1>\n")
    (docroot / "with space.txt").unlink()
    (docroot / "planted.php").write_text("<?php system($_GET['c']);\n")
    (docroot / "uploads" / "shell.php").write_text("<?php eval($_POST['x']);\n")
    os.symlink("/etc", docroot / "planted-link")


def test_restore_replaces_the_live_tree_with_exactly_the_backup(scene: RestoreScene) -> None:
    """Files planted after the backup do not survive; nothing is left beside the docroot."""
    original = tree_fingerprint(scene.docroot)
    before = scene.untouched()
    _deface(scene.docroot)

    report = _restore(scene, force=True)

    assert tree_fingerprint(scene.docroot) == original
    assert not (scene.docroot / "planted.php").exists()
    assert not (scene.docroot / "uploads" / "shell.php").exists()
    assert scene.untouched() == before
    assert scene.leftovers() == []
    assert [item.target for item in report.restored] == [str(scene.docroot)]
    assert report.restored[0].check.endswith("swapped in")


def test_the_live_docroot_of_an_active_account_needs_force(scene: RestoreScene) -> None:
    _deface(scene.docroot)
    defaced = tree_fingerprint(scene.docroot)

    with pytest.raises(BackupError) as refused:
        _restore(scene)

    assert str(refused.value) == (
        f"acct-1 is active: restoring over its live docroot (web1:{scene.docroot}) replaces "
        "the site's current files; pass --force (or --reactivate) to do that, or --path to "
        "restore elsewhere; nothing was restored"
    )
    assert tree_fingerprint(scene.docroot) == defaced
    assert scene.leftovers() == []


def test_a_symlinked_docroot_is_refused_and_its_target_untouched(scene: RestoreScene) -> None:
    """The client swapped its docroot for a link to the neighbour's: nothing is written
    through it, and nothing of the neighbour's changes hands."""
    shutil.rmtree(scene.docroot)
    os.symlink(scene.neighbour, scene.docroot)
    before = scene.untouched()

    with pytest.raises(BackupError, match=f"restore target {scene.docroot} is a symlink"):
        _restore(scene, force=True)

    assert scene.untouched() == before
    assert os.readlink(scene.docroot) == str(scene.neighbour)
    assert scene.leftovers() == []


def test_a_path_through_a_symlink_is_refused(scene: RestoreScene) -> None:
    """`--path` below a link the client planted inside the allowed root, pointing out."""
    os.symlink(scene.outside, scene.www / "exit")
    before = scene.untouched()

    with pytest.raises(BackupError, match=f"{scene.www}/exit is a symlink; refusing to follow"):
        _restore(scene, path=str(scene.www / "exit" / "restored"))
    with pytest.raises(BackupError, match=f"restore target {scene.www}/exit is a symlink"):
        _restore(scene, path=str(scene.www / "exit"))

    assert scene.untouched() == before
    assert sorted(os.listdir(scene.outside)) == ["passwd"]


@pytest.mark.parametrize(
    "where",
    ["{outside}/restored", "{www}", "{www}/../outside", "relative/path", "/"],
)
def test_a_path_outside_the_allowed_roots_is_refused(scene: RestoreScene, where: str) -> None:
    before = scene.untouched()
    path = where.format(outside=scene.outside, www=scene.www)

    with pytest.raises(BackupError, match=r"allowed_roots|clean absolute path|absolute directory"):
        _restore(scene, path=path)

    assert scene.untouched() == before


def test_to_host_obeys_that_hosts_roots(scene: RestoreScene, tmp_path: Path) -> None:
    """web2's only allowed root is tmp/web2: the old docroot's path is outside it there."""
    (tmp_path / "web2").mkdir()

    with pytest.raises(BackupError, match="lies outside the host's allowed_roots"):
        _restore(scene, host="web2", force=True)
    _restore(scene, host="web2", path=str(tmp_path / "web2" / "acct-1" / "site"))

    assert tree_fingerprint(tmp_path / "web2" / "acct-1" / "site") == tree_fingerprint(
        scene.docroot
    )


def test_a_path_onto_a_directory_with_files_needs_force(scene: RestoreScene) -> None:
    """`--path` at the neighbour's docroot must not silently replace it."""
    before = scene.untouched()

    with pytest.raises(
        BackupError, match=f"restore target {scene.neighbour} exists and is not empty; pass --force"
    ):
        _restore(scene, path=str(scene.neighbour))

    assert scene.untouched() == before
    assert scene.leftovers() == []


def test_a_new_path_is_created_without_touching_the_live_site(scene: RestoreScene) -> None:
    live = tree_fingerprint(scene.docroot)
    target = scene.www / "staging" / "acct-1"

    _restore(scene, path=str(target))

    assert tree_fingerprint(target) == live
    assert tree_fingerprint(scene.docroot) == live
    assert scene.leftovers() == []


def test_an_interrupt_mid_stream_leaves_the_live_tree_untouched(scene: RestoreScene) -> None:
    """Ctrl-C while the archive streams: the staging directory goes, the site stays."""
    _deface(scene.docroot)
    defaced = tree_fingerprint(scene.docroot)
    seen: list[str] = []
    sent = [0]

    def interrupt(name: str, size: int) -> None:
        sent[0] += size
        if sent[0] < 3 * 1024 * 1024:
            return
        deadline = time.monotonic() + 10  # the host is extracting into its staging directory
        while not seen and time.monotonic() < deadline:
            seen.extend(scene.leftovers())
            time.sleep(0.05)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        restore_backup(
            scene.app.backups, RestoreRequest(scene.backup.id, force=True), progress=interrupt
        )

    assert tree_fingerprint(scene.docroot) == defaced
    assert seen and all(staging.STAGING_PREFIX in path for path in seen)
    assert scene.leftovers() == []
    last = _events(scene)[-1]
    assert last.details["outcome"] == "failed"
    assert last.details["error"] == "KeyboardInterrupt"


def test_a_lost_link_mid_stream_leaves_the_live_tree_untouched(ssh_scene: RestoreScene) -> None:
    scene = ssh_scene
    _deface(scene.docroot)
    defaced = tree_fingerprint(scene.docroot)
    sent = [0]

    def drop(name: str, size: int) -> None:
        sent[0] += size
        if sent[0] > 1024 * 1024:
            # The archive streams through the OpenSSH client: its end of the link dies.
            for pid in _ssh_children():
                os.kill(pid, signal.SIGKILL)
            transport = scene.app.transports.get("web1")
            assert isinstance(transport, SSHTransport)
            transport.connection().sock.close()

    with pytest.raises(BackupError, match=r"web1"):
        restore_backup(
            scene.app.backups, RestoreRequest(scene.backup.id, force=True), progress=drop
        )

    assert tree_fingerprint(scene.docroot) == defaced
    # The host's script removes its staging directory once tar sees its input end.
    deadline = time.monotonic() + 10
    while scene.leftovers() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert scene.leftovers() == []
    # The next restore, over a new connection, completes.
    _restore(scene, force=True)
    assert not (scene.docroot / "planted.php").exists()


def test_a_tree_differing_from_the_archive_is_not_swapped_in(
    scene: RestoreScene, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The comparison can fail: a file appears in staging after tar, one changes."""
    extract = staging.extract_script

    def tampered(target: staging.StagedTarget, compression: str, replace: bool = True) -> str:
        return extract(target, compression, replace).replace(
            "printf '%s %s\\0' lapse-uid",
            "echo extra > added.txt; echo more >> index.html\nprintf '%s %s\\0' lapse-uid",
        )

    monkeypatch.setattr(staging, "extract_script", tampered)
    live = tree_fingerprint(scene.docroot)

    with pytest.raises(BackupError) as caught:
        _restore(scene, force=True)

    message = str(caught.value)
    assert "added.txt: not in the backup (file)" in message
    assert "index.html: size differs" in message
    assert message.endswith("nothing swapped")
    assert tree_fingerprint(scene.docroot) == live
    assert scene.leftovers() == []


# A host without b3sum: its extract script announces SHA-256 and lists with openssl.
_NO_B3SUM = ("command -v b3sum", "command -v lapse-no-such-b3sum")


def _planted(monkeypatch: pytest.MonkeyPatch, *plants: tuple[str, str]) -> None:
    """Make every extract script of the test carry `plants` ((text, replacement) pairs)."""
    extract = staging.extract_script

    def planted(target: staging.StagedTarget, compression: str, replace: bool = True) -> str:
        script = extract(target, compression, replace)
        for text, replacement in plants:
            assert text in script
            script = script.replace(text, replacement)
        return script

    monkeypatch.setattr(staging, "extract_script", planted)


@pytest.mark.parametrize("b3sum", [True, False], ids=["blake3", "sha256"])
def test_content_changed_under_the_extraction_is_found_with_either_digest(
    scene: RestoreScene, monkeypatch: pytest.MonkeyPatch, b3sum: bool
) -> None:
    """Same size, same times, one byte changed after tar: only the digests can tell, and
    they do, whichever the host announced."""
    change = (
        "printf '%s %s\\0' lapse-uid",
        "touch -r index.html stamp; printf X | dd of=index.html bs=1 count=1 conv=notrunc "
        "2>/dev/null; touch -r stamp index.html; rm stamp\nprintf '%s %s\\0' lapse-uid",
    )
    _planted(monkeypatch, change, *([] if b3sum else [_NO_B3SUM]))
    live = tree_fingerprint(scene.docroot)

    with pytest.raises(BackupError) as caught:
        _restore(scene, force=True)

    assert str(caught.value).startswith("files extracted on web1 differ from files-1.tar")
    assert "index.html: content differs; nothing swapped" in str(caught.value)
    assert tree_fingerprint(scene.docroot) == live
    assert scene.leftovers() == []


def test_a_host_without_b3sum_is_restored_and_compared_with_sha256(
    scene: RestoreScene, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = tree_fingerprint(scene.docroot)
    _deface(scene.docroot)
    _planted(monkeypatch, _NO_B3SUM)

    report = _restore(scene, force=True)

    assert tree_fingerprint(scene.docroot) == original
    assert report.restored[0].check.endswith("swapped in")


@pytest.mark.parametrize(
    "lie",
    [
        # Announces SHA-256, lists BLAKE3; announces BLAKE3, lists SHA-256.
        ('lapse-digest "$digest"', "lapse-digest sha256"),
        ('[ "$digest" = blake3 ]', '[ "$digest" != blake3 ]'),
    ],
    ids=["says-sha256", "says-blake3"],
)
def test_a_listing_in_another_digest_than_announced_fails_every_file(
    scene: RestoreScene, monkeypatch: pytest.MonkeyPatch, lie: tuple[str, str]
) -> None:
    """The daemon digests the archive with what the host announced, never with what its
    listing looks like: a host listing in another digest has every file refused."""
    _planted(monkeypatch, lie)
    live = tree_fingerprint(scene.docroot)

    with pytest.raises(BackupError) as caught:
        _restore(scene, force=True)

    assert "index.html: content differs" in str(caught.value)
    assert tree_fingerprint(scene.docroot) == live
    assert scene.leftovers() == []


@pytest.mark.parametrize(
    ("announcement", "expected"),
    [
        ("printf '%s\\0' 'lapse-digest md5'", "announced no known digest ('lapse-digest md5')"),
        ("printf 'x%.0s' {1..100}", "announced no known digest ('" + "x" * 64 + "')"),
        ("exit 0", "ended before it read the archive"),
    ],
    ids=["unknown", "endless", "none"],
)
def test_an_extraction_announcing_no_known_digest_is_given_nothing(
    scene: RestoreScene, monkeypatch: pytest.MonkeyPatch, announcement: str, expected: str
) -> None:
    _planted(monkeypatch, ("printf '%s %s\\0' lapse-digest \"$digest\"", announcement))
    live = tree_fingerprint(scene.docroot)

    with pytest.raises(BackupError) as caught:
        _restore(scene, force=True)

    assert expected in str(caught.value)
    assert tree_fingerprint(scene.docroot) == live


def test_an_object_not_matching_its_manifest_is_not_swapped_in(scene: RestoreScene) -> None:
    """A readable archive put in the store in place of the backed-up one. The scene's
    backup was verified, so the stream is checked against the BLAKE3 verification
    recorded (the SHA-256 alone: tests/lab/restore/test_restore_stream_digest.py)."""
    from tests.lab.restore_scene import crafted_archive, member, store_as_backup

    store_as_backup(
        scene, crafted_archive([member("./", b"5"), member("./x", data=b"x")]), manifest=False
    )
    live = tree_fingerprint(scene.docroot)

    with pytest.raises(BackupError, match="another BLAKE3 than its verification recorded"):
        _restore(scene, force=True)

    assert tree_fingerprint(scene.docroot) == live
    assert scene.leftovers() == []


def _ssh_children() -> list[int]:
    """The `ssh` client processes this test process started."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and command == "ssh":
            found.append(int(entry.name))
    return found


def _events(scene: RestoreScene) -> list[Event]:
    with scene.app.sessions() as session:
        return list(
            session.scalars(select(Event).where(Event.account_id == "acct-1").order_by(Event.id))
        )


def test_every_restore_is_recorded_with_operator_backup_and_target(
    state_scene: RestoreScene,
) -> None:
    scene = state_scene
    _restore(scene, force=True, actor="ops:night-shift")
    with pytest.raises(BackupError):
        _restore(scene, path=str(scene.outside), actor="ops:night-shift")  # refused: not recorded
    os.symlink(scene.outside, scene.www / "exit")
    target = scene.www / "exit"
    with pytest.raises(BackupError):
        _restore(scene, path=str(target / "x"), actor="ops:day-shift")

    events = _events(scene)
    restored, failed = events[-2], events[-1]
    assert restored.actor == "ops:night-shift"
    assert restored.reason == (
        f"restore of backup {scene.backup.id} restored: web1:{scene.docroot}"
    )
    assert restored.details == {
        "backup": scene.backup.id,
        "targets": [f"web1:{scene.docroot}"],
        "outcome": "restored",
        "error": None,
        "force": True,
    }
    assert failed.actor == "ops:day-shift"
    assert failed.details["outcome"] == "failed"
    assert f"{target} is a symlink" in failed.details["error"]
    with scene.app.sessions() as session:
        audit = list(
            session.scalars(
                select(AuditEntry).where(AuditEntry.kind == "event").order_by(AuditEntry.seq)
            )
        )
    assert [entry.summary for entry in audit[-2:]] == [
        f"active -> active: {restored.reason}",
        f"active -> active: {failed.reason}",
    ]
    assert audit[-1].data["actor"] == "ops:day-shift"
    assert audit[-1].data["details"]["backup"] == scene.backup.id


def test_a_changed_host_key_stops_the_stream_before_anything_is_sent(
    ssh_scene: RestoreScene, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The archive streams through the OpenSSH client: it checks the host key against the
    configured known_hosts only, as the paramiko transport does."""
    scene = ssh_scene
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")],
        check=True,
    )
    shared = Path(scene.app.config.hosts["web1"].known_hosts or "")
    host_part = shared.read_text().split()[0]
    other_key = " ".join((tmp_path / "other.pub").read_text().split()[:2])
    changed = tmp_path / "known_hosts"
    changed.write_text(f"{host_part} {other_key}\n")
    transport = scene.app.transports.get("web1")
    monkeypatch.setattr(transport, "_known_hosts", changed)  # as if the host key changed
    live = tree_fingerprint(scene.docroot)

    with pytest.raises(BackupError, match="Host key verification failed"):
        _restore(scene, force=True)

    assert tree_fingerprint(scene.docroot) == live
    assert scene.leftovers() == []


@pytest.mark.parametrize("armed", [True, False], ids=["armed ahead", "started after"])
def test_a_ctrl_c_as_the_swap_is_sent_waits_for_the_swap(
    scene: RestoreScene, monkeypatch: pytest.MonkeyPatch, armed: bool
) -> None:
    """Ctrl-C arrives the moment the swap is handed to the host (its order to a script
    started ahead, or the script itself), before the host could act on it: the swap
    still runs, then the interrupt stops the command, and no staging directory is
    left neither swapped in nor removed."""
    original = tree_fingerprint(scene.docroot)
    _deface(scene.docroot)
    transport = scene.app.transports.get("web1")
    run, order = transport.run_standalone, restore_module._order_swap

    def interrupted(script: str, label: str, **options: Any) -> Any:
        if label.startswith("swap of"):
            os.kill(os.getpid(), signal.SIGINT)
        return run(script, label, **options)

    def interrupted_order(process: Any) -> Any:
        os.kill(os.getpid(), signal.SIGINT)
        return order(process)

    monkeypatch.setattr(transport, "run_standalone", interrupted)
    monkeypatch.setattr(restore_module, "_order_swap", interrupted_order)
    monkeypatch.setattr(restore_module, "_spare_session", lambda *_args: armed)

    with pytest.raises(KeyboardInterrupt):
        _restore(scene, force=True)

    assert tree_fingerprint(scene.docroot) == original
    assert scene.leftovers() == []


def test_a_swap_started_ahead_does_nothing_without_its_order(
    scene: RestoreScene, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The swap's session is started while the archive streams; the
    comparison then fails (a file changed under the extraction): the waiting script
    ends without its order, and the live tree stays as it was."""
    _deface(scene.docroot)
    defaced = tree_fingerprint(scene.docroot)
    armed: list[Any] = []
    arm = restore_module._arm_swap

    def arm_and_keep(*args: Any) -> Any:
        armed.append(arm(*args))
        return armed[-1]

    extract = staging.extract_script

    def tampered(target: staging.StagedTarget, compression: str, replace: bool = True) -> str:
        return extract(target, compression, replace).replace(
            "printf '%s %s\\0' lapse-uid", "echo more >> index.html\nprintf '%s %s\\0' lapse-uid"
        )

    monkeypatch.setattr(staging, "extract_script", tampered)
    monkeypatch.setattr(restore_module, "_arm_swap", arm_and_keep)

    with pytest.raises(BackupError, match=r"index\.html: size differs"):
        _restore(scene, force=True)

    assert len(armed) == 1
    ended = armed[0].wait()  # ended by the failure, without the order
    # 0: it saw its input end; killed: by SIGKILL (the OpenSSH client) or, in the command
    # wrapper, on SIGTERM (128 + 15).
    assert ended.status in (0, 128 + signal.SIGTERM, -signal.SIGKILL)
    assert tree_fingerprint(scene.docroot) == defaced
    assert scene.leftovers() == []


def test_the_swap_is_armed_before_the_archive_streams_and_a_broken_stream_ends_it(
    scene: RestoreScene, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The swap's session is started once the store answered, before the archive streams
    (its connection is then ready when the comparison ends); the store's answer then
    breaks off: the waiting script ends without its order, and the live tree stays as
    it was."""
    _deface(scene.docroot)
    defaced = tree_fingerprint(scene.docroot)
    calls: list[str] = []
    armed: list[Any] = []
    arm, stream, store = restore_module._arm_swap, restore_module._stream, scene.app.backups.store
    opened = store.open

    def arm_and_keep(*args: Any) -> Any:
        calls.append("arm")
        armed.append(arm(*args))
        return armed[-1]

    def noted(*args: Any) -> Any:
        calls.append("stream")
        return stream(*args)

    class BrokenOff:
        def __init__(self, inner: Any) -> None:
            self.inner, self.given = inner, 0

        def read(self, size: int = -1) -> bytes:
            if self.given > 64 * 1024:
                raise BackupStoreError("connection reset by the store")
            data: bytes = self.inner.read(size)
            self.given += len(data)
            return data

        def close(self) -> None:
            self.inner.close()

    monkeypatch.setattr(restore_module, "_arm_swap", arm_and_keep)
    monkeypatch.setattr(restore_module, "_stream", noted)
    monkeypatch.setattr(store, "open", lambda *args: BrokenOff(opened(*args)))

    with pytest.raises(BackupError, match="connection reset by the store"):
        _restore(scene, force=True)

    assert calls == ["arm", "stream"]
    ended = armed[0].wait()  # ended by the failure, without the order
    # 0: it saw its input end; killed: by SIGKILL (the OpenSSH client) or, in the command
    # wrapper, on SIGTERM (128 + 15).
    assert ended.status in (0, 128 + signal.SIGTERM, -signal.SIGKILL)
    assert tree_fingerprint(scene.docroot) == defaced
    assert scene.leftovers() == []


@pytest.mark.parametrize("given", [b"", b"swapx\n", b"no\n"])
def test_an_armed_swap_script_without_its_order_touches_nothing(
    tmp_path: Path, given: bytes
) -> None:
    """Run by itself: an armed swap script given the input's end or another line exits 0
    having printed nothing and moved nothing; given SWAP_ORDER, it swaps."""
    root = tmp_path / "www"
    (root / "site").mkdir(parents=True)
    (root / "site" / "index.html").write_text("live\n")
    target = staging.staged_target(str(root / "site"), [str(root)])
    (root / target.staging).mkdir()
    (root / target.staging / "index.html").write_text("restored\n")
    script = staging.swap_script(target, armed=True)

    def run(stdin: bytes) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["bash", "-c", script], input=stdin, capture_output=True)

    idle = run(given)
    assert (idle.returncode, idle.stdout, idle.stderr) == (0, b"", b"")
    assert (root / "site" / "index.html").read_text() == "live\n"
    assert (root / target.staging / "index.html").read_text() == "restored\n"
    done = run(staging.SWAP_ORDER)
    assert done.returncode == 0 and staging.SWAPPED in done.stdout.split()
    assert (root / "site" / "index.html").read_text() == "restored\n"


def test_a_swap_whose_ssh_client_failed_is_in_doubt(
    ssh_scene: RestoreScene, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The swap's OpenSSH client exits 255 without the swap's mark (here: the host key
    changed between the stream and the swap): the host may have run the script, so
    the restore says so and leaves the staging directory alone rather than remove it
    under a swap that may be under way."""
    scene = ssh_scene
    _deface(scene.docroot)
    defaced = tree_fingerprint(scene.docroot)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")],
        check=True,
    )
    shared = Path(scene.app.config.hosts["web1"].known_hosts or "")
    changed = tmp_path / "known_hosts"
    other_key = " ".join((tmp_path / "other.pub").read_text().split()[:2])
    changed.write_text(f"{shared.read_text().split()[0]} {other_key}\n")
    transport = scene.app.transports.get("web1")
    swap = restore_module._swap

    def swap_after_the_key_changed(*args: Any) -> None:
        monkeypatch.setattr(transport, "_known_hosts", changed)
        swap(*args)

    monkeypatch.setattr(restore_module, "_spare_session", lambda *_args: False)
    monkeypatch.setattr(restore_module, "_swap", swap_after_the_key_changed)

    with pytest.raises(BackupError, match="the link was lost") as caught:
        _restore(scene, force=True)

    assert "Host key verification failed" in str(caught.value)
    assert tree_fingerprint(scene.docroot) == defaced
    left = scene.leftovers()
    assert [Path(path).name.startswith(staging.STAGING_PREFIX) for path in left] == [True]
    shutil.rmtree(left[0])
