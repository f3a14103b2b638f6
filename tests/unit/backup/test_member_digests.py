"""A site archive's member digests: made in verification's one pass over the archive,
stored, read back only when they are exactly what was stored for this archive, and
used by the restore's description of the archive in place of digesting again."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import blake3
import pytest
import zstandard
from structlog.testing import capture_logs

from daemon.backup import member_digests
from daemon.backup.archive import list_archive
from daemon.backup.manifest import BackupObject
from daemon.backup.member_digests import (
    MemberDigestsError,
    decode,
    encode,
    list_with_digests,
    load,
    store_digests,
)
from daemon.backup.restore_listing import archive_tree
from daemon.backup.stores.local import LocalStore

_CONTENT = {
    "index.html": b"<h1>home</h1>\n",
    "line\nbreak.txt": b"a newline in the name\n",
    # Not UTF-8 (Latin-1 e-acute), as tarfile decodes it with surrogateescape.
    "caf\udce9.txt": b"a name that is not UTF-8\n",
    "dir/big.bin": bytes(range(256)) * 1024,
    "empty": b"",
}


def _archive() -> bytes:
    """A tar of `_CONTENT`, a directory, a symlink, a hard link and a device."""
    buffer = io.BytesIO()
    with tarfile.open(
        fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT, errors="surrogateescape"
    ) as archive:
        directory = tarfile.TarInfo("dir")
        directory.type = tarfile.DIRTYPE
        archive.addfile(directory)
        for name, content in _CONTENT.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
        link = tarfile.TarInfo("link-to-home")
        link.type, link.linkname = tarfile.SYMTYPE, "index.html"
        archive.addfile(link)
        hard = tarfile.TarInfo("hard-home")
        hard.type, hard.linkname = tarfile.LNKTYPE, "index.html"
        archive.addfile(hard)
        device = tarfile.TarInfo("null")
        device.type = tarfile.CHRTYPE
        archive.addfile(device)
    return buffer.getvalue()


def _key(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def _blake3(content: bytes) -> str:
    return blake3.blake3(content).hexdigest()


def test_one_pass_lists_the_archive_as_list_archive_does_and_digests_every_file() -> None:
    data = _archive()

    listing, digests = list_with_digests(io.BytesIO(data))

    assert listing.as_dict() == list_archive(io.BytesIO(data)).as_dict()
    assert listing.unsafe, "the device is noted as unsafe, not raised"
    expected = {_key(name): _blake3(content) for name, content in _CONTENT.items()}
    expected[b"hard-home"] = expected[b"index.html"]
    assert digests == expected


def test_a_truncated_archive_is_refused_by_the_pass() -> None:
    with pytest.raises(tarfile.TarError):
        list_with_digests(io.BytesIO(_archive()[:4000]))


def test_the_stored_form_gives_back_every_name_and_digest() -> None:
    digests = list_with_digests(io.BytesIO(_archive()))[1]

    stored = encode(digests, "a" * 64)

    assert stored.isascii() is False, "compressed"
    assert decode(stored, "a" * 64) == digests


def _stored(document: object) -> bytes:
    return zstandard.ZstdCompressor().compress(json.dumps(document).encode())


_GOOD = {"format": 1, "digest": "blake3", "archive_sha256": "a" * 64, "files": {"x": "0" * 64}}


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (b"not zstd at all", "not a list of member digests"),
        (_stored([1, 2]), "not a list of member digests in format 1"),
        (_stored({**_GOOD, "format": 2}), "in format 1"),
        (_stored({**_GOOD, "digest": "sha256"}), "holds 'sha256' digests, not blake3"),
        (_stored({**_GOOD, "archive_sha256": "b" * 64}), "describes another archive"),
        (_stored({**_GOOD, "files": ["x"]}), "has no 'files' object"),
        (_stored({**_GOOD, "files": {"x": "0" * 64, "evil.php": "zz"}}), "'evil.php'"),
        (_stored({**_GOOD, "files": {"x": "0" * 63}}), "'x' is not 64 hex digits"),
    ],
)
def test_a_list_that_is_not_what_was_stored_is_refused_naming_why(data: bytes, named: str) -> None:
    with pytest.raises(MemberDigestsError, match=named):
        decode(data, "a" * 64)


def test_a_known_digest_takes_the_place_of_digesting_and_the_rest_are_digested() -> None:
    data = _archive()
    # Without the device: the restore rules refuse it.
    data = _without_device(data)
    wrong = "f" * 64

    tree = archive_tree(io.BytesIO(data), blake3.blake3, {b"index.html": wrong})

    assert tree[b"index.html"].digest == wrong
    # A hard link is its target's entry, known digest included.
    assert tree[b"hard-home"].digest == wrong
    assert tree[b"dir/big.bin"].digest == _blake3(_CONTENT["dir/big.bin"])
    assert tree[_key("caf\udce9.txt")].digest == _blake3(_CONTENT["caf\udce9.txt"])


def _without_device(data: bytes) -> bytes:
    buffer = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(data), mode="r", errors="surrogateescape") as source,
        tarfile.open(
            fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT, errors="surrogateescape"
        ) as archive,
    ):
        for member in source:
            if not member.ischr():
                archive.addfile(member, source.extractfile(member) if member.isreg() else None)
    return buffer.getvalue()


def _entry(data: bytes) -> BackupObject:
    return BackupObject(
        "files-1.tar.zst",
        "files",
        "/srv/www/site",
        "none",
        len(data),
        hashlib.sha256(data).hexdigest(),
    )


@pytest.fixture
def stored(tmp_path: Path) -> tuple[LocalStore, BackupObject, dict[str, object]]:
    """A local store holding an archive's list, and the record the database keeps of it."""
    store = LocalStore(tmp_path / "store")
    data = _without_device(_archive())
    entry = _entry(data)
    record = store_digests(store, "acct/b1/", entry, list_with_digests(io.BytesIO(data))[1])
    assert record is not None
    return store, entry, record


def test_a_stored_list_is_read_back_when_it_is_what_was_recorded(
    stored: tuple[LocalStore, BackupObject, dict[str, object]],
) -> None:
    store, entry, record = stored

    digests = load(store, "acct/b1/", entry, record)

    assert digests is not None
    assert digests[b"index.html"] == _blake3(_CONTENT["index.html"])
    assert record["object"] == "files-1.tar.zst" + member_digests.SUFFIX


def test_a_list_changed_in_the_store_is_not_used_and_says_so(
    stored: tuple[LocalStore, BackupObject, dict[str, object]],
) -> None:
    store, entry, record = stored
    key = "acct/b1/" + str(record["object"])
    forged = {name: "0" * 64 for name in decode(store.read(key), entry.sha256)}
    store.put(key, encode(forged, entry.sha256))

    with capture_logs() as logs:
        assert load(store, "acct/b1/", entry, record) is None

    assert "changed in the store since it was verified" in logs[0]["reason"]
    assert logs[0]["log_level"] == "warning"


def test_a_list_grown_in_the_store_is_refused_without_reading_it_whole(
    stored: tuple[LocalStore, BackupObject, dict[str, object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, entry, record = stored
    key = "acct/b1/" + str(record["object"])
    store.put(key, store.read(key) + b"\0" * (8 << 20))
    reads: list[int] = []
    opened = store.open

    def counting(name: str, version: str | None = None) -> object:
        stream = opened(name, version)

        class Counted:
            def read(self, size: int = -1) -> bytes:
                data = stream.read(size)
                reads.append(len(data))
                return data

            def close(self) -> None:
                stream.close()

        return Counted()

    monkeypatch.setattr(store, "open", counting)

    with capture_logs() as logs:
        assert load(store, "acct/b1/", entry, record) is None

    assert sum(reads) == int(str(record["size"])) + 1
    assert "changed in the store" in logs[0]["reason"]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"archive_sha256": "0" * 64}, "of another archive or digest"),
        ({"digest": "sha256"}, "of another archive or digest"),
        ({"object": "../other/files-1.tar.zst.members.json.zst"}, "malformed"),
        ({"size": "12"}, "malformed"),
    ],
)
def test_a_record_of_another_archive_or_out_of_shape_is_not_used(
    stored: tuple[LocalStore, BackupObject, dict[str, object]],
    change: dict[str, object],
    named: str,
) -> None:
    store, entry, record = stored

    with capture_logs() as logs:
        assert load(store, "acct/b1/", entry, {**record, **change}) is None

    assert named in logs[0]["reason"]


def test_a_list_gone_from_the_store_is_not_used(
    stored: tuple[LocalStore, BackupObject, dict[str, object]],
) -> None:
    store, entry, record = stored
    store.delete("acct/b1/" + str(record["object"]))

    with capture_logs() as logs:
        assert load(store, "acct/b1/", entry, record) is None

    assert logs[0]["object"] == "files-1.tar.zst"


def test_only_a_passed_verification_names_a_list() -> None:
    entry = _entry(b"x")
    record = {"object": "files-1.tar.zst" + member_digests.SUFFIX}
    objects = {"files-1.tar.zst": {"members": 1, member_digests.RECORD: record}}

    assert member_digests.recorded({"ok": True, "objects": objects}, entry) == record
    assert member_digests.recorded({"ok": False, "objects": objects}, entry) is None
    assert member_digests.recorded(None, entry) is None
    assert member_digests.recorded({"ok": True, "objects": {"files-1.tar.zst": {}}}, entry) is None
