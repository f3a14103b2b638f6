"""Restoring a backup onto a host: site files swapped in from staging, databases re-imported.

Site files never go straight into the live tree (invariant 5). For each site
archive the host extracts into a fresh staging directory beside the target
(daemon.backup.staging), while the daemon reads the same stream once
(daemon.backup.relay): it counts and hashes every byte against the manifest (or
the BLAKE3 verification recorded beside it, daemon.backup.object_digest),
decompresses the archive and sends the host the plain tar, checks every member
against the restore rules before the host receives it, and
describes what the extraction must hold (daemon.backup.restore_listing), each file
digested with the digest the host's script announced before the stream (BLAKE3
where the host has b3sum, SHA-256 otherwise); with BLAKE3, a file's digest comes from
the list verification stored beside the archive where it can be trusted
(daemon.backup.member_digests), instead of being made again. The host then
lists the staging tree, and only when that listing equals the archive's, entry
for entry, is the staging directory swapped in with renames; the previous tree
is removed after the swap. Any failure or interrupt before the swap removes the
staging directory and leaves the live tree untouched.

Targets obey the tree rule: the target must lie strictly inside one of its
host's allowed roots, and no component from that root to the target may be a
symlink. A database object is checked in full (size, SHA-256) before its import
starts. Every restore that reached a host is recorded in the account's history
(and so in the audit log) with the operator, the backup, the targets and the
outcome.
"""

from __future__ import annotations

import hashlib
import signal
import tarfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, BinaryIO, cast

import structlog
import zstandard

from daemon.backup import commands, head_start, member_digests, object_digest, staging, tar_walk
from daemon.backup.archive import HashingReader, UnsafeArchiveError, decompressed
from daemon.backup.errors import BackupError
from daemon.backup.head_start import HeadStart
from daemon.backup.manifest import BackupObject, object_key
from daemon.backup.member_digests import MemberDigests
from daemon.backup.relay import Gate, GateClosedError
from daemon.backup.restore_listing import (
    ListingError,
    Tree,
    announced_digest,
    archive_tree,
    differences,
    parse_listing,
)
from daemon.backup.service import BackupService
from daemon.backup.staging import StagedTarget
from daemon.backup.stores.base import BackupStoreError, Readable
from daemon.backup.verify import check_object
from daemon.domain.states import PROVABLE_BACKUPS, RestoreOutcome, State
from daemon.store.models import Account, Event
from daemon.transport import CommandError, CommandResult, RemoteProcess, Transport, TransportError

log = structlog.get_logger("lapse.backup")

_CHUNK = 1 << 20
# How many differing paths an error quotes from the comparison.
_SHOWN_DIFFERENCES = 10
_ARCHIVE_ERRORS = (tarfile.TarError, zstandard.ZstdError, EOFError, OSError, ValueError)
# The most an extract script's announcement of its digest takes (it takes about 20 bytes).
_ANNOUNCEMENT_LIMIT = 64
# What the OpenSSH client exits with when it failed itself (connecting, or a lost link).
_SSH_FAILED = 255
CHECKED = "every member matches the archive (type, mode, owner, time, size, digest, link)"

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
    """What to restore, where, and who asked.

    `host` overrides the host each object came from; `path` puts site files into
    that directory instead of their original docroot. `force` allows replacing
    the live docroot of an account that is not deleted. `actor` is recorded.
    """

    backup_id: str
    host: str | None = None
    path: str | None = None
    files: bool = True
    databases: bool = True
    dry_run: bool = False
    force: bool = False
    actor: str = "lapse"


@dataclass
class _Staged:
    """A site archive extracted and compared in its staging directory, not yet swapped."""

    entry: BackupObject
    host: str
    target: StagedTarget
    restored: RestoredObject
    swapped: bool = False
    # The swap script was started and its end not seen (link lost, interrupted): it
    # finishes on its own, so its staging directory must not be touched.
    in_doubt: bool = False
    # The swap's session, started ahead and waiting for its order (see _arm_swap).
    armed: RemoteProcess | None = None
    # The record of the archive's stored member digests, from its verification.
    digests: Mapping[str, Any] | None = None
    # What the archive's stream is checked against (set with `digests`).
    stream_digest: object_digest.StreamDigest | None = None


def restore_backup(
    service: BackupService,
    request: RestoreRequest,
    progress: Progress | None = None,
    ahead: HeadStart | None = None,
) -> RestoreReport:
    """Restore the backup `request` names and return what was restored.

    `progress`, when given, is told of the bytes of each object as they move into
    the host. `ahead`: the restore's head start (daemon.backup.head_start), whose
    session on the first archive's host the restore takes when its own plan names that
    host (the store's answers it began come through `service.store`).

    Raises UnknownBackupError; UnsafeArchiveError for an archive with a member the
    restore rules refuse; BackupError when the backup is unusable, a
    target breaks the tree rule or is live without `force`, a host command fails,
    or the extracted files differ from the archive. Whatever fails before the
    swap leaves every live tree as it was.
    """
    backup = service.get(request.backup_id)
    if backup.manifest is None or backup.status not in PROVABLE_BACKUPS:
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
        _check_path(request.path)
    prefix = object_key(backup.account_id, backup.id)
    report = RestoreReport(backup.id, backup.account_id, request.dry_run)
    file_objects = [entry for entry in chosen if entry.kind == "files"]
    plans = [_plan(service, request, entry, len(file_objects)) for entry in file_objects]
    for item in plans:
        item.digests = member_digests.recorded(backup.verification, item.entry)
        item.stream_digest = object_digest.expected(backup.verification, item.entry)
    if plans and request.path is None and not request.dry_run and not request.force:
        _refuse_live(service, backup.account_id, plans)
    databases = [entry for entry in chosen if entry.kind == "database"]
    for entry in databases:
        _check_before_restore(service, prefix + entry.name, entry)
    if request.dry_run:
        report.restored = [item.restored for item in plans]
        report.restored += [_database_item(request, entry) for entry in databases]
        return report
    try:
        _restore_all(service, request, prefix, plans, databases, report, progress, ahead)
    except BaseException as error:
        _discard(service, [item for item in plans if not (item.swapped or item.in_doubt)])
        _record(service, request, backup.account_id, plans, databases, error)
        raise
    _record(service, request, backup.account_id, plans, databases, None)
    return report


def _restore_all(
    service: BackupService,
    request: RestoreRequest,
    prefix: str,
    plans: list[_Staged],
    databases: list[BackupObject],
    report: RestoreReport,
    progress: Progress | None,
    ahead: HeadStart | None,
) -> None:
    """Stage and compare every site archive, import the databases, then swap each tree in.

    Leaving, by an error or an interrupt, ends an armed swap session that was not
    given its order: its script then ends without touching anything.
    """
    with ExitStack() as sessions:
        for item in plans:
            started = time.monotonic()
            # Only the swap that follows at once is started ahead: an armed session
            # holds one of the host's max_sessions while it waits.
            arm = item is plans[-1] and not databases and _spare_session(service, item.host)
            _stage(service, request, prefix + item.entry.name, item, progress, arm, sessions, ahead)
            ahead = None  # it began the first archive only
            item.restored.seconds = time.monotonic() - started
        for entry in databases:
            restored = _database_item(request, entry)
            started = time.monotonic()
            _restore_database(service, prefix + entry.name, entry, restored, progress)
            restored.check = "imported, client exited 0"
            restored.seconds = time.monotonic() - started
            report.restored.append(restored)
        for item in plans:
            started = time.monotonic()
            _swap(service, item)
            item.restored.seconds += time.monotonic() - started
            item.restored.check = CHECKED + "; swapped in"
            report.restored.insert(plans.index(item), item.restored)


def _spare_session(service: BackupService, host_name: str) -> bool:
    """Whether the host allows a second command beside the extraction (the armed swap)."""
    host = service.hosts.get(host_name)
    return host is not None and host.max_sessions > 1


def _check_path(path: str) -> None:
    candidate = PurePosixPath(path)
    if not candidate.is_absolute() or ".." in candidate.parts or candidate == PurePosixPath("/"):
        raise BackupError(f"restore path {path!r} must be an absolute directory below /")


def _host_of(request: RestoreRequest, entry: BackupObject) -> str:
    host = request.host or entry.host
    if host is None:
        raise BackupError(f"{entry.name} records no host; name one to restore onto")
    return host


def _plan(
    service: BackupService, request: RestoreRequest, entry: BackupObject, file_objects: int
) -> _Staged:
    """Return where site archive `entry` goes. Raises BackupError for an unknown host or a
    target outside the host's allowed roots."""
    host_name = _host_of(request, entry)
    host = service.hosts.get(host_name)
    if host is None:
        raise BackupError(f"host {host_name!r} is not in the config's [hosts] table")
    path = entry.source
    if request.path is not None:
        # Several docroots restored to one path each get their own sub-directory.
        path = request.path.rstrip("/")
        if file_objects > 1:
            path = f"{path}/{entry.name.split('.')[0]}"
    try:
        target = staging.staged_target(path, [str(root) for root in host.allowed_roots])
    except staging.TargetError as error:
        raise BackupError(f"{entry.name} onto {host_name}: {error}") from error
    restored = RestoredObject(entry.name, entry.kind, host_name, target.path, entry.size)
    return _Staged(entry, host_name, target, restored)


def _database_item(request: RestoreRequest, entry: BackupObject) -> RestoredObject:
    return RestoredObject(
        entry.name, entry.kind, _host_of(request, entry), entry.source, entry.size
    )


def _refuse_live(service: BackupService, account_id: str, plans: list[_Staged]) -> None:
    """Raise BackupError unless the account is deleted: its docroot is the live site."""
    with service.sessions() as session:
        row = session.get(Account, account_id)
        state = row.state if row is not None else None
    if state in (None, State.DELETED):
        return
    where = ", ".join(f"{item.host}:{item.target.path}" for item in plans)
    raise BackupError(
        f"{account_id} is {state}: restoring over its live docroot ({where}) replaces the "
        "site's current files; pass --force (or --reactivate) to do that, or --path to "
        "restore elsewhere; nothing was restored"
    )


def _check_before_restore(service: BackupService, key: str, entry: BackupObject) -> None:
    check = check_object(service.store, key, entry)
    if not check.ok:
        raise BackupError(f"{entry.name} failed its check, nothing restored: {check.problem}")


def _stage(
    service: BackupService,
    request: RestoreRequest,
    key: str,
    item: _Staged,
    progress: Progress | None,
    arm: bool,
    sessions: ExitStack,
    ahead: HeadStart | None,
) -> None:
    """Extract site archive `key` into a staging directory on the host and compare it.

    With `arm`, the swap's session is started (into `sessions`) once the store answered,
    so that its connection is made while the archive streams. The extraction runs in the
    session `ahead` started on the host, if any. Raises UnsafeArchiveError,
    or BackupError when the host fails, the object does not match the manifest, or
    the staging tree differs from the archive.
    """
    entry, target = item.entry, item.target
    transport = service.transports.get(item.host)
    label = f"restore of {entry.name} into {target.staging_path}"
    log.info("restore started", object=entry.name, host=item.host, target=target.path)

    def sent(size: int) -> None:
        if progress is not None:
            progress(entry.name, size)

    try:
        # A live docroot was allowed above (deleted account, or --force); another
        # path replaces a directory with something in it only with --force.
        replace = request.force or request.path is None
        script = staging.extract_script(target, "none", replace)
    except commands.UnsafeValueError as error:
        raise BackupError(f"{label} on {item.host} failed: {error}") from error
    try:
        # The host first: its connection is made while the store answers the request.
        with ExitStack() as held:
            process = _extraction(transport, item.host, script, label, ahead, held)
            stream = service.store.open(key)
            try:
                if arm:
                    item.armed = _arm_swap(transport, item, sessions)
                new_digest, early = _announced(process, item.host, label)
                known = _known_digests(service, key, item, new_digest)
                # Set for every plan by restore_backup; without it, the manifest's SHA-256.
                checked = item.stream_digest or object_digest.expected(None, entry)
                try:
                    expected, size, digest = _stream(
                        process, stream, entry, sent, label, new_digest, checked.name, known
                    )
                except TransportError as error:
                    # The host may have stopped reading because its script refused the target.
                    _raise_refusal(process, item.host, label, error)
                    raise
            finally:
                stream.close()
            output = early + process.read_all()
            result = process.wait()
    except (TransportError, BackupStoreError) as error:
        raise BackupError(f"{label} on {item.host} failed: {error}") from error
    if result.status != 0:
        raise _failed_before_swap(item.host, label, result)
    if (size, digest) != (entry.size, checked.value):
        raise BackupError(
            f"{entry.name} read back {size} bytes with another {checked.label} than "
            f"{checked.source} (changed in the store?); nothing swapped"
        )
    _compare(expected, output, item)


def _extraction(
    transport: Transport,
    host: str,
    script: str,
    label: str,
    ahead: HeadStart | None,
    held: ExitStack,
) -> RemoteProcess:
    """Return the extraction's session, its end put on `held`: the one `ahead` started on
    `host`, given `script` now, or else a new one. Raises TransportError, or BackupError
    with the host's own reason when the session started ahead had already failed (its
    connection refused, say)."""
    process = ahead.claim_session(host, held) if ahead is not None else None
    if process is None:
        return held.enter_context(transport.start_bulk(script, label))
    try:
        process.write(head_start.given(script))
    except TransportError as error:
        _raise_refusal(process, host, label, error)
        raise
    return process


def _known_digests(
    service: BackupService, key: str, item: _Staged, new_digest: tar_walk.NewDigest
) -> MemberDigests | None:
    """The member digests verification stored for `item`'s archive (object `key`), when the
    host digests as they do and they can be trusted (daemon.backup.member_digests.load)."""
    if item.digests is None or new_digest is not member_digests.NEW_DIGEST:
        return None
    prefix = key.removesuffix(item.entry.name)
    return member_digests.load(service.store, prefix, item.entry, item.digests)


def _announced(process: RemoteProcess, host: str, label: str) -> tuple[tar_walk.NewDigest, bytes]:
    """Read the digest the extract script announces before it reads the archive; return
    it and any output after the announcement.

    Raises BackupError when the script ended first (with the host's own reason: it
    refused the target, or the connection failed) or announced something else, and
    TransportError when its output cannot be read. Nothing of the archive was sent.
    """
    head = b""
    while b"\0" not in head and len(head) < _ANNOUNCEMENT_LIMIT:
        piece = process.read(_ANNOUNCEMENT_LIMIT - len(head))
        if not piece:
            result = process.wait()
            if result.status == 0:
                raise BackupError(f"{label} on {host} ended before it read the archive")
            raise _failed_before_swap(host, label, result)
        head += piece
    announcement, _, rest = head.partition(b"\0")
    try:
        return announced_digest(announcement), rest
    except ListingError as error:
        raise BackupError(f"{label} on {host}: {error}; the live tree is untouched") from error


def _raise_refusal(process: RemoteProcess, host: str, label: str, error: TransportError) -> None:
    """Raise BackupError with the host's own reason when its script exited with an error."""
    try:
        result = process.wait()
    except TransportError:
        return
    if result.status > 0 and result.stderr.strip():
        raise _failed_before_swap(host, label, result) from error


def _failed_before_swap(host: str, label: str, result: CommandResult) -> BackupError:
    """The error of a host script that failed before any swap, in the host's own words."""
    failed = CommandError(host, label, result.status, result.stderr)
    return BackupError(f"{failed}; the live tree is untouched")


def _stream(
    process: RemoteProcess,
    stream: Readable,
    entry: BackupObject,
    sent: Callable[[int], None],
    label: str,
    new_digest: tar_walk.NewDigest,
    checked: str,
    known: MemberDigests | None = None,
) -> tuple[Tree, int, str]:
    """Send the object to `process` through a gate while checking and describing it, each
    file's content digested with `new_digest` unless `known` (the digests verification
    stored) gives its digest: the caller trusts the tree only once the object's size and
    digest `checked` (a name in daemon.backup.archive.DIGESTS), returned here, match
    what was recorded (daemon.backup.object_digest).

    Returns (the tree the archive describes, bytes read, their digest `checked`). Raises
    UnsafeArchiveError, BackupError for an unreadable archive, and TransportError
    or BackupStoreError when a stage failed.
    """
    # The gate carries the decompressed tar: the daemon decodes it anyway to check it, so
    # the host does not decode it again, and every header the walk checks is checked
    # before the host receives a byte of it.
    compressed = HashingReader(stream, (checked,))
    moved = [0]

    def counted(_size: int) -> None:
        # Progress is told in bytes of the object, as its size is known.
        done = compressed.size
        sent(done - moved[0])
        moved[0] = done

    with Gate(decompressed(compressed, entry.compression), process, counted) as gate:
        try:
            expected = archive_tree(cast(BinaryIO, gate), new_digest, known)
            gate.finish()
        except GateClosedError as error:
            cause = error.__cause__
            if isinstance(cause, TransportError | BackupStoreError):
                raise cause from None
            if isinstance(cause, _ARCHIVE_ERRORS):
                raise BackupError(f"{entry.name} is not a readable archive: {cause}") from error
            raise BackupError(f"{label} failed: {error}") from error
        except UnsafeArchiveError as error:
            raise UnsafeArchiveError(
                f"{entry.name} holds a member that could write outside the target, "
                f"refused before the host received it; the live tree is untouched: {error}"
            ) from error
        except _ARCHIVE_ERRORS as error:
            raise BackupError(f"{entry.name} is not a readable archive: {error}") from error
    return expected, compressed.size, compressed.hexdigest(checked)


def _compare(expected: Tree, output: bytes, item: _Staged) -> None:
    try:
        uid, found = parse_listing(output)
    except ListingError as error:
        raise BackupError(f"{item.host}:{item.target.staging_path}: {error}") from error
    # Run as a user other than root, tar cannot give files their recorded owners.
    lines = differences(expected, found, owners=uid == 0)
    if not lines:
        log.info("restored files match the archive", object=item.entry.name)
        return
    shown = "; ".join(lines[:_SHOWN_DIFFERENCES])
    more = (
        f" (and {len(lines) - _SHOWN_DIFFERENCES} more)" if len(lines) > _SHOWN_DIFFERENCES else ""
    )
    raise BackupError(
        f"files extracted on {item.host} differ from {item.entry.name}: {shown}{more}; "
        "nothing swapped"
    )


def _arm_swap(transport: Transport, item: _Staged, sessions: ExitStack) -> RemoteProcess:
    """Start `item`'s swap script, waiting for its order, and return its process.

    Its connection (a new one: the OpenSSH client) is made while the archive streams,
    instead of after the comparison: made once the stream was sent, it was still not
    ready when a quick comparison ended, and the swap waited for it (0.15-0.4 s of a
    256 MiB restore on two busy cores). The script does nothing before its order,
    which only a successful comparison sends. Raises TransportError.
    """
    label = f"swap of {item.target.path}"
    return sessions.enter_context(
        transport.start_bulk(staging.swap_script(item.target, armed=True), label)
    )


def _swap(service: BackupService, item: _Staged) -> None:
    """Put the staging directory in place of the target. Raises BackupError."""
    transport = service.transports.get(item.host)
    label = f"swap of {item.target.path}"
    item.in_doubt = True
    with _interrupt_held():
        try:
            if item.armed is not None:
                result = _order_swap(item.armed)
            else:
                # Through the OpenSSH client as the stream was: no paramiko connection.
                result = transport.run_standalone(staging.swap_script(item.target), label)
        except TransportError as error:
            raise _swap_in_doubt(item, label, str(error)) from error
        swapped = staging.SWAPPED in result.stdout.split()
        if not swapped and result.status == _SSH_FAILED:
            # The OpenSSH client's own failure (the script exits 0 or 3): the link may have
            # gone after the host started the script.
            raise _swap_in_doubt(item, label, result.stderr.strip() or "ssh exited 255")
        item.in_doubt = False
        if not swapped:
            failed = CommandError(item.host, label, result.status, result.stderr)
            raise BackupError(str(failed))
        item.swapped = True
    if result.stderr.strip():
        log.warning("restore swap", host=item.host, target=item.target.path, output=result.stderr)
    log.info("restore finished", object=item.entry.name, host=item.host, target=item.target.path)


def _order_swap(armed: RemoteProcess) -> CommandResult:
    """Give an armed swap script its order; return what it did. Raises TransportError."""
    return armed.run_to_end(staging.SWAP_ORDER)


def _swap_in_doubt(item: _Staged, label: str, reason: str) -> BackupError:
    # The script ignores hang-ups: it finishes both renames or neither on its own.
    return BackupError(
        f"{label} on {item.host}: the link was lost ({reason}); the host holds either "
        f"the previous or the fully restored tree at {item.target.path}"
    )


@contextmanager
def _interrupt_held() -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) until the block ends, then raise KeyboardInterrupt.

    Around the swap: an interrupt between sending the swap script and the host
    starting it would leave a staging directory that is neither swapped in nor,
    being in doubt, removed. Only in the main thread (the only one Python lets set
    a handler); elsewhere the block runs as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda number, _frame: caught.append(number))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def _discard(service: BackupService, plans: list[_Staged]) -> None:
    """Remove the staging directories of a failed restore, as far as the hosts answer."""
    for item in plans:
        try:
            service.transports.get(item.host).run(
                staging.discard_script(item.target), f"discard {item.target.staging_path}"
            )
        except (TransportError, CommandError) as error:
            log.warning(
                "staging directory left behind",
                host=item.host,
                path=item.target.staging_path,
                error=str(error),
            )


def _record(
    service: BackupService,
    request: RestoreRequest,
    account_id: str,
    plans: list[_Staged],
    databases: list[BackupObject],
    error: BaseException | None,
) -> None:
    """Append the restore to the account's history (and so to the audit log)."""
    targets = [f"{item.host}:{item.target.path}" for item in plans]
    targets += [f"{_host_of(request, entry)}:database {entry.source}" for entry in databases]
    outcome = RestoreOutcome.RESTORED if error is None else RestoreOutcome.FAILED
    details = {
        "backup": request.backup_id,
        "targets": targets,
        "outcome": outcome,
        "error": None if error is None else (str(error) or type(error).__name__),
        "force": request.force,
    }
    with service.sessions.begin() as session:
        row = session.get(Account, account_id)
        if row is None:
            return
        session.add(
            Event(
                account_id=account_id,
                at=service.clock(),
                from_state=row.state,
                to_state=row.state,
                reason=f"restore of backup {request.backup_id} {outcome}: {', '.join(targets)}",
                actor=request.actor,
                details=details,
            )
        )


def _restore_database(
    service: BackupService,
    key: str,
    entry: BackupObject,
    restored: RestoredObject,
    progress: Progress | None,
) -> None:
    host = service.hosts.get(restored.host)
    if host is None:
        raise BackupError(f"host {restored.host!r} is not in the config's [hosts] table")
    try:
        if entry.engine == "mariadb":
            script = commands.mariadb_restore_script(entry.source, host.mariadb, entry.compression)
            stdin = commands.password_line(host.mariadb)
        elif entry.engine == "postgresql":
            script = commands.postgres_restore_script(entry.source, host.postgresql)
            stdin = commands.password_line(host.postgresql)
        else:
            raise BackupError(f"{entry.name}: cannot restore a {entry.engine} database")
    except commands.UnsafeValueError as error:
        raise BackupError(str(error)) from error
    transport = service.transports.get(restored.host)
    label = f"restore of {entry.name} into {entry.source}"
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
    except (CommandError, TransportError, BackupStoreError) as error:
        raise BackupError(f"{label} on {restored.host} failed: {error}") from error
    if digest.hexdigest() != entry.sha256:
        raise BackupError(f"{entry.name} changed in the store while it was restored")
