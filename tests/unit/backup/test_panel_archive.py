"""Panel archives on a host (run here through the local transport): the file must be the
one the panel's command just wrote into a fresh root-only directory, never a symlink; it
comes back only with the size and SHA-256 the manifest records; and verification lists
it by its format."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from daemon.backup import panel_archive
from daemon.backup.manifest import PANEL_ARCHIVE, BackupObject
from daemon.backup.panel_archive import (
    REFUSED_STATUS,
    PanelArchive,
    PanelArchiveError,
    make_script,
    parse_made,
    place_script,
    refusal,
    stream_script,
)
from daemon.backup.stores.local import LocalStore
from daemon.backup.verify import check_object
from daemon.transport.local import LocalTransport

HOST = LocalTransport("here")


def _archive(work_dir: Path, command: str, file: str = "out.tar") -> PanelArchive:
    return PanelArchive("here", command, file, "tar", str(work_dir), "test")


def _made(work_dir: Path, command: str) -> tuple[int, str, str]:
    """Run make_script; return (status, stdout, stderr)."""
    result = HOST.run(make_script(_archive(work_dir, command)), "make", check=False)
    return result.status, result.stdout.decode(), result.stderr


@pytest.mark.parametrize(
    "name", ["", ".", "..", ".hidden", "a/b", "../x", "x\n", "x\ny", "-rf", "a b"]
)
def test_a_file_name_must_be_plain(name: str) -> None:
    with pytest.raises(PanelArchiveError, match="not a plain file name"):
        panel_archive.check_file_name(name)


@pytest.mark.parametrize("path", ["", "relative", "/", "/var/../etc", "/var/lib/", "/a\n/b"])
def test_a_work_dir_must_be_a_plain_absolute_path(path: str) -> None:
    with pytest.raises(PanelArchiveError, match="not a plain absolute path"):
        panel_archive.check_work_dir(path)


def test_the_file_the_command_wrote_is_streamed_and_its_directory_is_fresh(
    tmp_path: Path,
) -> None:
    work = tmp_path / "archives"  # made, 0700, when missing
    status, out, err = _made(work, 'printf panel > "$LAPSE_ARCHIVE_DIR/out.tar"; echo said')
    assert status == 0, err
    assert "said" in err  # the command's own output goes to stderr, not into the stream
    directory, size = parse_made(out.encode())
    assert Path(directory).parent == work and size == 5
    assert oct(work.stat().st_mode & 0o777) == "0o700"
    assert oct(Path(directory).stat().st_mode & 0o777) == "0o700"
    assert HOST.run(stream_script(directory, "out.tar", size), "stream").stdout == b"panel"
    # Changed since it was made (by whatever else runs as root): not streamed.
    with open(Path(directory) / "out.tar", "ab") as grown:
        grown.write(b"!")
    result = HOST.run(stream_script(directory, "out.tar", size), "stream", check=False)
    assert result.status == REFUSED_STATUS and result.stdout == b""
    assert "changed since it was made (5 bytes, now 6)" in (refusal(result.stderr) or "")
    HOST.run(panel_archive.discard_script(directory), "discard")
    assert list(work.iterdir()) == []


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        ('ln -s /etc/hostname "$LAPSE_ARCHIVE_DIR/out.tar"', "is a symbolic link, never followed"),
        ("true", "was not written"),
        ('mkdir "$LAPSE_ARCHIVE_DIR/out.tar"', "was not written"),
        ('cd "$LAPSE_ARCHIVE_DIR"; echo x > out.tar; ln out.tar b', "with a single link"),
    ],
)
def test_anything_but_a_file_the_command_wrote_is_refused(
    tmp_path: Path, command: str, reason: str
) -> None:
    status, out, err = _made(tmp_path, command)
    assert status == REFUSED_STATUS and panel_archive.MADE_MARK not in out
    assert reason in (refusal(err) or "")
    assert list(tmp_path.glob("lapse-archive.*")) == []  # removed on the way out


def test_a_directory_that_is_not_fresh_and_root_only_is_refused(tmp_path: Path) -> None:
    """Were mktemp to hand back a directory others can enter (or a symlink), nothing is
    run in it."""
    fake = tmp_path / "bin"
    fake.mkdir()
    shared = tmp_path / "work" / "lapse-archive.shared"
    shared.mkdir(parents=True, mode=0o755)
    shared.chmod(0o755)
    (tmp_path / "work").chmod(0o700)
    (fake / "mktemp").write_text(f"#!/bin/sh\necho {shared}\n")
    (fake / "mktemp").chmod(0o755)
    script = f"PATH={fake}:$PATH\n" + make_script(
        _archive(tmp_path / "work", 'touch "$LAPSE_ARCHIVE_DIR/ran"')
    )
    result = HOST.run(script, "make", check=False)
    assert result.status == REFUSED_STATUS
    assert "is not a fresh directory only" in (refusal(result.stderr) or "")
    assert not (shared / "ran").exists()


def test_a_failing_command_fails_with_its_own_status(tmp_path: Path) -> None:
    status, _out, err = _made(tmp_path, 'echo "disk full" >&2; exit 8')
    assert status == 8 and "disk full" in err
    assert list(tmp_path.glob("lapse-archive.*")) == []


def test_a_work_dir_that_is_a_symlink_or_writable_by_others_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "linked").symlink_to(home)
    status, _out, err = _made(tmp_path / "linked", 'touch "$LAPSE_ARCHIVE_DIR/out.tar"')
    assert status == REFUSED_STATUS and "is not a real directory" in (refusal(err) or "")
    assert list(home.iterdir()) == []
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o1777)
    status, _out, err = _made(shared, 'touch "$LAPSE_ARCHIVE_DIR/out.tar"')
    assert status == REFUSED_STATUS and "only it may write" in (refusal(err) or "")


def test_a_restore_runs_the_command_only_on_the_bytes_the_manifest_records(
    tmp_path: Path,
) -> None:
    data = b"the panel's archive"
    digest = hashlib.sha256(data).hexdigest()
    command = 'cat "$LAPSE_ARCHIVE"; echo " from $(basename "$LAPSE_ARCHIVE")"'
    script = place_script(str(tmp_path), "cpmove-alice.tar.gz", len(data), digest, command)
    result = HOST.run(script, "place", stdin=data)
    assert result.stdout == data + b" from cpmove-alice.tar.gz\n"
    changed = data[:-1] + b"!"
    result = HOST.run(script, "place", stdin=changed, check=False)
    assert result.status == REFUSED_STATUS and result.stdout == b""
    assert "differs from the backup's archive" in (refusal(result.stderr) or "")
    result = HOST.run(script, "place", stdin=data[:-1], check=False)
    assert "bytes, the backup's archive" in (refusal(result.stderr) or "")
    assert list(tmp_path.glob("lapse-archive.*")) == []


def _check(tmp_path: Path, data: bytes, archive_format: str) -> tuple[bool, str | None, object]:
    """Store `data` as a panel archive and check it; return (ok, problem, listing)."""
    store = LocalStore(tmp_path / "store")
    upload = store.begin_upload("a/b/panel-1", part_size=1 << 20)
    upload.write(data)
    upload.complete()
    entry = BackupObject(
        "panel-1",
        PANEL_ARCHIVE,
        "x",
        panel_archive.COMPRESSION[archive_format],
        len(data),
        hashlib.sha256(data).hexdigest(),
        format=archive_format,
    )
    check = check_object(store, "a/b/panel-1", entry)
    return check.ok, check.problem, (check.listing or {}).get("unsafe")


def _tar_gz() -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name in ("cpmove-alice/cp/alice", "cpmove-alice/homedir/index.html"):
            info = tarfile.TarInfo(name)
            info.size = 4
            tar.addfile(info, io.BytesIO(b"data"))
    return raw.getvalue()


def _zip(*names: str) -> bytes:
    raw = io.BytesIO()
    # Stored, not deflated: the test flips a byte of a member's data where it can find it.
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_STORED) as archive:
        for name in names:
            archive.writestr(name, "content " * 100)
    return raw.getvalue()


def test_a_tar_gz_panel_archive_is_listed_to_its_end(tmp_path: Path) -> None:
    whole = _tar_gz()
    assert _check(tmp_path, whole, "tar.gz")[:2] == (True, None)
    # Cut short and recorded that way (a digest taken of the cut bytes): only the
    # listing can tell.
    cut = gzip.compress(gzip.decompress(whole)[:700])
    ok, problem, _unsafe = _check(tmp_path / "cut", cut, "tar.gz")
    assert not ok and problem is not None and "cannot be read back" in problem


def test_a_zip_panel_archive_is_listed_with_every_crc_checked(tmp_path: Path) -> None:
    good = _zip("backup_info.xml", "domains/shop/web.tgz")
    assert _check(tmp_path, good, "zip") == (True, None, [])
    at = good.index(b"content")  # flip a byte of the first member's stored data
    broken = good[:at] + bytes([good[at] ^ 0xFF]) + good[at + 1 :]
    ok, problem, _unsafe = _check(tmp_path / "broken", broken, "zip")
    assert not ok and problem is not None and "cannot be read back" in problem
    ok, _problem, unsafe = _check(tmp_path / "evil", _zip("../../etc/cron.d/x"), "zip")
    assert ok and unsafe == ["'../../etc/cron.d/x': absolute path or '..'"]


def test_a_panel_archive_in_another_format_than_declared_fails_its_check(tmp_path: Path) -> None:
    ok, problem, _unsafe = _check(tmp_path, _zip("a"), "tar")
    assert not ok and problem is not None and "cannot be read back" in problem
