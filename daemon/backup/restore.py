"""Restoring a backup onto a host: site files into a directory, databases re-imported.

Each object is checked before anything is written: its size and SHA-256 must
match the manifest, and a site archive must not hold a member with an absolute
path, a '..' component, a device file, or a path through one of its own symlinks.
Only then is it streamed from the store into the host's `tar` or database client.
Restored site files are then compared with the archive on the host (GNU tar
--compare: content, mode, owner, time and link target of every member).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import structlog

from daemon.backup import commands
from daemon.backup.archive import UnsafeArchiveError
from daemon.backup.errors import BackupError
from daemon.backup.manifest import BackupObject
from daemon.backup.service import BackupService, object_key
from daemon.backup.stores.base import StoreError
from daemon.backup.tree import check_account_tree
from daemon.backup.verify import check_object
from daemon.transport import CommandError, TransportError

log = structlog.get_logger("lapse.backup")

_CHUNK = 1 << 20
# How many differing paths an error quotes from tar --compare.
_SHOWN_DIFFERENCES = 10

# Told (object name, bytes just moved) as objects stream into the host.
Progress = Callable[[str, int], None]


@dataclass
class RestoredObject:
    """One object restored (or, in a dry run, that would be)."""

    name: str
    kind: str
    host: str
    target: str
    bytes: int
    check: str = ""  # what was checked after restoring, for the summary
    seconds: float = 0.0


@dataclass
class RestoreReport:
    """What a restore did, object by object."""

    backup_id: str
    account_id: str
    dry_run: bool
    restored: list[RestoredObject] = field(default_factory=list)


@dataclass(frozen=True)
class RestoreRequest:
    """What to restore and where.

    `host` overrides the host each object came from; `path` puts site files into
    that directory instead of their original docroot (a staging path).
    """

    backup_id: str
    host: str | None = None
    path: str | None = None
    files: bool = True
    databases: bool = True
    dry_run: bool = False
    compare_files: bool = True


def restore_backup(
    service: BackupService, request: RestoreRequest, progress: Progress | None = None
) -> RestoreReport:
    """Restore the backup `request` names and return what was restored.

    `progress`, when given, is told of the bytes of each object as they move (the
    check pass, then the restore). Raises UnknownBackupError, UnsafeArchiveError
    for an archive with an unsafe member, and BackupError when the backup is
    unusable, a host command fails, or restored files differ from the archive;
    nothing is written to a host before every chosen object passed its check.
    """
    backup = service.get(request.backup_id)
    if backup.manifest is None or backup.status not in ("verified", "completed"):
        raise BackupError(
            f"backup {backup.id} is {backup.status}; only a complete, uncorrupted backup "
            "can be restored"
        )
    chosen = [
        entry
        for entry in backup.manifest.objects
        if (entry.kind == "files" and request.files)
        or (entry.kind == "database" and request.databases)
    ]
    if not chosen:
        raise BackupError(f"backup {backup.id} holds nothing of what was asked to restore")
    if request.path is not None:
        _check_target(request.path)
    prefix = object_key(backup.account_id, backup.id)
    report = RestoreReport(backup.id, backup.account_id, request.dry_run)
    file_objects = [entry for entry in chosen if entry.kind == "files"]
    _check_trees(service, request, file_objects)
    for entry in chosen:
        _check_before_restore(service, prefix + entry.name, entry)
    for entry in chosen:
        host = request.host or entry.host
        if host is None:
            raise BackupError(f"{entry.name} records no host; name one to restore onto")
        target = _target(entry, request.path, len(file_objects))
        restored = RestoredObject(entry.name, entry.kind, host, target, entry.size)
        if not request.dry_run:
            started = time.monotonic()
            _restore_object(service, prefix + entry.name, entry, host, target, progress)
            restored.check = "imported, client exited 0"
            if entry.kind == "files" and request.compare_files:
                _compare_files(service, prefix + entry.name, entry, host, target)
                restored.check = "every member matches the archive (tar --compare)"
            restored.seconds = time.monotonic() - started
        report.restored.append(restored)
    return report


def _check_target(path: str) -> None:
    candidate = PurePosixPath(path)
    if not candidate.is_absolute() or ".." in candidate.parts or candidate == PurePosixPath("/"):
        raise BackupError(f"restore path {path!r} must be an absolute directory below /")


def _check_trees(
    service: BackupService, request: RestoreRequest, file_objects: list[BackupObject]
) -> None:
    """Check each site-files target on its host by the tree rule (invariant 5) before
    anything is written; a target that does not exist yet passes when every existing
    component above it does. Raises TreeError, or BackupError when the check cannot run."""
    for entry in file_objects:
        host_name = request.host or entry.host
        host = service.config.hosts.get(host_name) if host_name else None
        if host_name is None or host is None:
            continue  # named as such when the object is restored
        target = _target(entry, request.path, len(file_objects))
        try:
            check_account_tree(
                service.transports.get(host_name), host, target, None, allow_missing=True
            )
        except (CommandError, TransportError) as error:
            raise BackupError(f"tree check of {host_name}:{target} failed: {error}") from error


def _target(entry: BackupObject, path: str | None, file_objects: int) -> str:
    if entry.kind != "files":
        return entry.source  # a database is restored under its own name
    if path is None:
        return entry.source
    # Several docroots restored to one staging path each get their own sub-directory.
    return path if file_objects == 1 else f"{path.rstrip('/')}/{entry.name.split('.')[0]}"


def _check_before_restore(service: BackupService, key: str, entry: BackupObject) -> None:
    check = check_object(service.store, key, entry)
    if not check.ok:
        raise BackupError(f"{entry.name} failed its check, nothing restored: {check.problem}")
    unsafe = (check.listing or {}).get("unsafe") or []
    if unsafe:
        raise UnsafeArchiveError(
            f"{entry.name} holds members that could write outside the target, nothing "
            "restored: " + "; ".join(str(item) for item in unsafe)
        )


def _restore_object(
    service: BackupService,
    key: str,
    entry: BackupObject,
    host_name: str,
    target: str,
    progress: Progress | None,
) -> None:
    host = service.config.hosts.get(host_name)
    if host is None:
        raise BackupError(f"host {host_name!r} is not in the config's [hosts] table")
    try:
        if entry.kind == "files":
            script, stdin = commands.files_restore_script(target, entry.compression), b""
        elif entry.engine == "mariadb":
            script = commands.mariadb_restore_script(entry.source, host.mariadb, entry.compression)
            stdin = commands.password_line(host.mariadb)
        elif entry.engine == "postgresql":
            script = commands.postgres_restore_script(entry.source, host.postgresql)
            stdin = commands.password_line(host.postgresql)
        else:
            raise BackupError(f"{entry.name}: cannot restore a {entry.engine} database")
    except commands.UnsafeValueError as error:
        raise BackupError(str(error)) from error
    transport = service.transports.get(host_name)
    label = f"restore of {entry.name} into {target}"
    log.info("restore started", object=entry.name, host=host_name, target=target)
    digest = hashlib.sha256()
    try:
        stream = service.store.open(key)
        try:
            with transport.start(script, label) as process:
                if stdin:
                    process.write(stdin)
                while chunk := stream.read(_CHUNK):
                    digest.update(chunk)
                    process.write(chunk)
                    if progress is not None:
                        progress(entry.name, len(chunk))
                process.close_stdin()
                process.read_all()
                process.check()
        finally:
            stream.close()
    except (CommandError, TransportError, StoreError) as error:
        raise BackupError(f"{label} on {host_name} failed: {error}") from error
    if digest.hexdigest() != entry.sha256:
        raise BackupError(f"{entry.name} changed in the store while it was restored")
    log.info("restore finished", object=entry.name, host=host_name, target=target)


def _compare_files(
    service: BackupService, key: str, entry: BackupObject, host_name: str, target: str
) -> None:
    """Stream the archive again into `tar --compare` in `target` on the host.

    Raises BackupError naming the first differing paths when anything differs.
    """
    script = commands.files_compare_script(target, entry.compression)
    label = f"comparison of {target} with {entry.name}"
    transport = service.transports.get(host_name)
    try:
        stream = service.store.open(key)
        try:
            with transport.start(script, label) as process:
                # tar reports differences on stdout as it goes; drain it alongside.
                report: list[bytes] = []
                reader = threading.Thread(target=lambda: report.append(process.read_all()))
                reader.start()
                while chunk := stream.read(_CHUNK):
                    process.write(chunk)
                process.close_stdin()
                reader.join()
                result = process.wait()
        finally:
            stream.close()
    except (TransportError, StoreError) as error:
        raise BackupError(f"{label} on {host_name} failed: {error}") from error
    if result.status == 0:
        log.info("restored files match the archive", object=entry.name, target=target)
        return
    lines = b"".join(report).decode("utf-8", "replace").splitlines()
    shown = "; ".join(lines[:_SHOWN_DIFFERENCES]) or result.stderr.strip()
    more = (
        f" (and {len(lines) - _SHOWN_DIFFERENCES} more)" if len(lines) > _SHOWN_DIFFERENCES else ""
    )
    raise BackupError(
        f"restored files in {host_name}:{target} differ from {entry.name}: {shown}{more}"
    )
