"""Taking backups: site files, databases and history, streamed from the host into the store.

A backup is recorded as 'running' before the first byte moves, so a crash never
leaves it unrecorded; it ends 'completed' (everything uploaded, manifest
written) and, once every object was re-read and matched, 'verified'. A failure
removes whatever objects the backup had written and records the error. A caller's
stop check (a payment arrived) is asked between objects and every few seconds
while one streams; a stopped backup is removed the same way, without an alert.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import version
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, TypeVar

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from daemon.backup import choice, commands
from daemon.backup.errors import BackupCancelledError, BackupError, UnknownBackupError
from daemon.backup.history import export_history
from daemon.backup.manifest import (
    MANIFEST_NAME,
    PANEL_ARCHIVE,
    BackupObject,
    Manifest,
    object_key,
)
from daemon.backup.panel_archive import (
    COMPRESSION,
    REFUSED_STATUS,
    PanelArchive,
    PanelArchiveError,
    discard_script,
    make_script,
    object_name,
    parse_made,
    refusal,
    stream_script,
)
from daemon.backup.pump import pump
from daemon.backup.sizing import DATABASE_PART_SIZE, part_size_for
from daemon.backup.stop_watch import StopCheck, stop_watch
from daemon.backup.stores.base import BackupStore, BackupStoreError
from daemon.backup.tree import enter_script, tree_error
from daemon.backup.verify import verify_backup
from daemon.backup.views import BackupView
from daemon.config.schema import BackupConfig, HostConfig
from daemon.domain.errors import UnknownAccountError
from daemon.domain.snapshot import Database, Service
from daemon.domain.states import BackupStatus
from daemon.store.models import Account, Backup
from daemon.store.records import stored_snapshot
from daemon.transport import (
    CommandError,
    CommandResult,
    RemoteProcess,
    Transport,
    TransportError,
    Transports,
)

if TYPE_CHECKING:
    # Only named here: the alerts object is handed in, and importing the notices (jinja2,
    # the templates) would cost `lapse restore` a tenth of a second of start-up.
    from daemon.notices.alerts import OpsAlerts

log = structlog.get_logger("lapse.backup")

_T = TypeVar("_T")

_WARNING_PREFIX = "lapse-warning: "


@dataclass
class _Run:
    """The state of one backup while it is taken."""

    backup_id: str
    manifest: Manifest
    retain_until: datetime
    tools: dict[str, commands.HostTools] = field(default_factory=dict)
    stop_check: StopCheck | None = None

    def check_stop(self) -> None:
        """Raise BackupCancelledError if the stop check gives a reason to stop now."""
        reason = self.stop_check() if self.stop_check is not None else None
        if reason is not None:
            raise BackupCancelledError(f"backup {self.backup_id} stopped: {reason}")


def new_backup_id(at: datetime) -> str:
    """Return a new backup id: its UTC time (sortable) and a random suffix."""
    return at.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


class BackupService:
    """Takes and lists backups of accounts into one store."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        config: BackupConfig,
        hosts: Mapping[str, HostConfig],
        store: BackupStore,
        transports: Transports,
        clock: Callable[[], datetime],
        alerts: OpsAlerts | None = None,
    ) -> None:
        """Take the state database, the `[backup]` section (retention, the store's
        options), the `[hosts]` table, the store it names, the hosts' transports, the
        clock and where to alert ops."""
        self.sessions = sessions
        self.config = config
        self.hosts = hosts
        self.store = store
        self.transports = transports
        self.clock = clock
        self._alerts = alerts

    def create(
        self,
        account_id: str,
        *,
        reason: str = "manual",
        verify: bool = True,
        stop_check: StopCheck | None = None,
        panel_archives: Sequence[PanelArchive] = (),
    ) -> BackupView:
        """Back up the account's site files, databases and history, then verify the backup.

        `stop_check`, when given, returns why the backup must stop now, or None; it is
        asked before each object and every few seconds while one streams.
        `panel_archives` are files control panels' own commands write on the host
        (daemon.backup.panel_archive): each is made, streamed into the backup as an
        object of its own and removed from the host.
        Returns the backup as stored. Raises UnknownAccountError for an account never
        synced, BackupCancelledError when the stop check answered, BackupError (with
        the host's error output) when any part fails; a failed or stopped backup is
        recorded as 'failed' and leaves no objects behind.
        """
        now = self.clock()
        backup_id = new_backup_id(now)
        with self.sessions() as session:
            account = session.get(Account, account_id)
            if account is None:
                raise UnknownAccountError(f"no account {account_id!r} in the state database")
            snapshot = stored_snapshot(account)
            history = export_history(session, account, now)
            session.add(
                Backup(
                    id=backup_id,
                    account_id=account_id,
                    store=self.store.kind,
                    location=self.store.describe(object_key(account_id, backup_id)),
                    status=BackupStatus.RUNNING,
                    reason=reason,
                    created_at=now,
                )
            )
            session.commit()
        log.info("backup started", account=account_id, backup=backup_id, reason=reason)
        run = _Run(
            backup_id,
            Manifest(
                backup_id=backup_id,
                account_id=account_id,
                reason=reason,
                created_at=now.isoformat(),
                lapse_version=version("lapse"),
            ),
            retain_until=now + self.config.retention,
            stop_check=stop_check,
        )
        try:
            for index, service in enumerate(snapshot.services if snapshot else (), start=1):
                self._back_up_service(run, index, service)
            for index, archive in enumerate(panel_archives, start=1):
                run.manifest.objects.append(self._take_panel_archive(run, index, archive))
            run.manifest.objects.append(self._put_history(run, history))
            run.manifest.completed_at = self.clock().isoformat()
            self.store.put(
                object_key(account_id, backup_id, MANIFEST_NAME),
                json.dumps(run.manifest.as_dict(), indent=2).encode(),
                retain_until=run.retain_until,
            )
        except BaseException as error:
            self._fail(run, error)
            if isinstance(error, Exception):
                raise self._wrapped(run, error) from error
            raise
        self._finish(run)
        log.info(
            "backup completed",
            account=account_id,
            backup=backup_id,
            objects=len(run.manifest.objects),
            bytes=run.manifest.size,
        )
        # A complete backup is kept; only its verification (a second full read) is
        # skipped when the phase that wanted it must stop.
        run.check_stop()
        if verify:
            verify_backup(self, backup_id)
        return self.get(backup_id)

    def get(self, backup_id: str) -> BackupView:
        """Return the backup `backup_id`. Raises UnknownBackupError."""
        with self.sessions() as session:
            row = session.get(Backup, backup_id)
            if row is None:
                raise UnknownBackupError(f"no backup {backup_id!r} in the state database")
            return BackupView.of(row)

    def list(self, account_id: str) -> list[BackupView]:
        """Return the account's backups, newest first."""
        with self.sessions() as session:
            rows = session.scalars(
                select(Backup)
                .where(Backup.account_id == account_id)
                .order_by(Backup.created_at.desc(), Backup.id.desc())
            ).all()
            return [BackupView.of(row) for row in rows]

    def chosen(self, account_id: str, backup_id: str) -> BackupView:
        """Return the backup `backup_id` names ('latest': the newest verified) of the
        account, as `lapse restore` picks it (daemon.backup.choice).

        Raises UnknownBackupError, or BackupError when there is none or it is another
        account's.
        """
        return choice.chosen(self, account_id, backup_id)

    def latest_verified(self, account_id: str, since: datetime | None = None) -> BackupView | None:
        """Return the newest verified backup of the account (made at or after `since`)."""
        return choice.newest_verified(self.list(account_id), since)

    def download_links(self, backup_id: str) -> dict[str, str]:
        """Return links a client can download the backup's site files and databases with,
        by object name; empty when the store cannot give links (a local directory)."""
        backup = self.get(backup_id)
        if backup.manifest is None:
            return {}
        expires = getattr(self.config.store, "download_link_expiry", None)
        if expires is None:
            return {}
        links = {}
        for entry in backup.manifest.objects:
            if entry.kind in ("files", "database"):
                url = self.store.download_url(
                    object_key(backup.account_id, backup.id, entry.name), expires
                )
                if url:
                    links[entry.name] = url
        return links

    def client_download_link(self, account_id: str, since: datetime | None = None) -> str | None:
        """Return a link to the site files of the account's newest verified backup (made
        at or after `since`), for a client notice; None when there is none or the store
        cannot sign one (the notice then goes out without it: the link matters less than
        the notice)."""
        latest = self.latest_verified(account_id, since=since)
        if latest is None:
            return None
        try:
            links = self.download_links(latest.id)
        except BackupStoreError as error:
            log.warning("no download link for the notice", account=account_id, error=str(error))
            return None
        files = [url for name, url in links.items() if name.startswith("files-")]
        return files[0] if files else None

    def recover_interrupted(self, busy: Collection[str] = ()) -> int:
        """Mark backups left 'running' by a stopped process as failed and remove their
        objects and unfinished uploads, but those of the `busy` accounts (a phase of
        theirs runs in a live process: another daemon's backup goes on). Returns how many
        there were."""
        with self.sessions() as session:
            rows = [
                row
                for row in session.scalars(
                    select(Backup).where(Backup.status == BackupStatus.RUNNING)
                )
                if row.account_id not in busy
            ]
            for row in rows:
                prefix = object_key(row.account_id, row.id)
                try:
                    self.store.abort_incomplete(prefix)
                    self.store.delete_prefix(prefix)
                except BackupStoreError as error:
                    log.warning(
                        "cannot clean up interrupted backup", backup=row.id, error=str(error)
                    )
                row.status = BackupStatus.FAILED
                row.error = "interrupted: Lapse stopped while the backup ran"
                row.completed_at = self.clock()
            session.commit()
            return len(rows)

    # -- taking one backup -------------------------------------------------------------

    def _host(self, name: str) -> tuple[Transport, HostConfig]:
        host = self.hosts.get(name)
        if host is None:
            raise BackupError(
                f"host {name!r} named by the billing data is not in the config's [hosts] table"
            )
        return self.transports.get(name), host

    def _tools(self, run: _Run, name: str, transport: Transport) -> commands.HostTools:
        if name not in run.tools:
            output = transport.run(commands.probe_script(), "tool probe").stdout.decode()
            self._learn_tools(run, name, output)
        return run.tools[name]

    def _learn_tools(self, run: _Run, name: str, probe_output: str) -> None:
        """Record what the probe found on host `name`. Raises BackupError."""
        try:
            run.tools[name] = commands.HostTools.parse(probe_output, name)
        except ValueError as error:
            raise BackupError(str(error)) from error
        run.manifest.tools[name] = run.tools[name].versions
        run.manifest.hosts.append(name)

    def _back_up_service(self, run: _Run, index: int, service: Service) -> None:
        run.check_stop()
        transport, host = self._host(service.host)
        if service.docroot:
            try:
                self._back_up_files(run, index, service, transport, host)
            except CommandError as error:
                # The tree check runs first in each command that touches the docroot.
                raise tree_error(error, service.host, service.docroot) or error from error
        tools = self._tools(run, service.host, transport)
        for database in service.databases:
            run.check_stop()
            run.manifest.objects.append(self._dump(run, transport, host, service, database, tools))

    def _back_up_files(
        self, run: _Run, index: int, service: Service, transport: Transport, host: HostConfig
    ) -> None:
        """Stream a tar of the service's docroot into the store, each command entering the
        docroot through the tree check (invariant 5) so no link is followed."""
        enter = enter_script(host, service.docroot, service.system_user or None)
        if service.host not in run.tools:
            # One command for both: each command costs the host a session (a login
            # shell starting), which is most of a small backup's time.
            script = enter + commands.probe_script() + commands.measure_script(".")
            output = transport.run(script, f"probe and measure {service.docroot}").stdout
            probe, _, rest = output.rpartition(commands.MEASURE_MARK)
            self._learn_tools(run, service.host, probe.decode())
        else:
            script = enter + commands.measure_script(".")
            rest = transport.run(script, f"measure {service.docroot}").stdout
            rest = rest.partition(commands.MEASURE_MARK)[2]
        real, size = self._measured(host, service.docroot, rest)
        tools = run.tools[service.host]
        name = f"files-{index}.tar.{commands.EXTENSIONS[tools.compressor]}"
        run.manifest.objects.append(
            self._stream(
                run,
                transport,
                enter + commands.files_script(".", tools.compressor),
                name=name,
                label=f"tar of {real}",
                part_size=part_size_for(size),
                entry=BackupObject(name, "files", real, tools.compressor, 0, "", host=service.host),
            )
        )

    def _measured(self, host: HostConfig, docroot: str, output: bytes) -> tuple[str, int]:
        """Read what `measure_script` printed after its mark; check the real path."""
        lines = output.decode("utf-8", errors="surrogateescape").splitlines()
        if len(lines) != 2 or not lines[1].isdigit():
            raise BackupError(f"unexpected answer measuring {docroot}: {output[:200]!r}")
        real = lines[0]
        # Checked on the host already; the resolved path must also name an allowed root.
        self._check_inside_roots(real, host, f"docroot {docroot} (resolved)")
        return real, int(lines[1])

    @staticmethod
    def _check_inside_roots(path: str, host: HostConfig, what: str) -> None:
        candidate = PurePosixPath(path)
        if not candidate.is_absolute() or ".." in candidate.parts or "\n" in path:
            raise BackupError(f"{what} {path!r} is not a plain absolute path")
        roots = [PurePosixPath(root) for root in host.allowed_roots]
        if not any(candidate.is_relative_to(root) and candidate != root for root in roots):
            raise BackupError(
                f"{what} {path} lies outside the host's allowed_roots "
                f"({', '.join(str(root) for root in roots)})"
            )

    def _dump(
        self,
        run: _Run,
        transport: Transport,
        host: HostConfig,
        service: Service,
        database: Database,
        tools: commands.HostTools,
    ) -> BackupObject:
        try:
            if database.engine == "mariadb":
                admin = host.mariadb
                script = commands.mariadb_dump_script(database.name, admin, tools.compressor)
                name = f"db-mariadb-{database.name}.sql.{commands.EXTENSIONS[tools.compressor]}"
                compression = tools.compressor
            elif database.engine == "postgresql":
                admin = host.postgresql
                script = commands.postgres_dump_script(database.name, admin)
                name = f"db-postgresql-{database.name}.dump"
                compression = "pg_dump"
            else:
                raise BackupError(
                    f"database {database.name!r} has engine {database.engine!r}; "
                    "Lapse dumps 'mariadb' and 'postgresql'"
                )
            stdin = commands.password_line(admin)
        except commands.UnsafeValueError as error:
            raise BackupError(str(error)) from error
        return self._stream(
            run,
            transport,
            script,
            name=name,
            label=f"dump of {database.engine} database {database.name}",
            part_size=DATABASE_PART_SIZE,
            entry=BackupObject(
                name,
                "database",
                database.name,
                compression,
                0,
                "",
                engine=database.engine,
                host=service.host,
            ),
            stdin=stdin,
        )

    def _take_panel_archive(self, run: _Run, index: int, archive: PanelArchive) -> BackupObject:
        """Run the panel's command into a fresh root-only directory, stream the file it
        wrote into the object `panel-INDEX.FORMAT` and remove the directory.

        Raises PanelArchiveError (the file refused, or the command failed),
        BackupCancelledError, or the transport's and store's errors.
        """
        run.check_stop()
        transport, _host = self._host(archive.host)
        label = f"panel archive ({archive.label})"
        output, result = self._watched(
            run, transport, make_script(archive), label, RemoteProcess.read_all, check=False
        )
        if result.status != 0:
            refused = refusal(result.stderr) if result.status == REFUSED_STATUS else None
            if refused is not None:
                raise PanelArchiveError(f"{label} on {archive.host}: refused: {refused}")
            # The panel's command failed: its own words (a full disk, an unknown user).
            raise PanelArchiveError(
                str(CommandError(archive.host, label, result.status, result.stderr))
            )
        directory, size = parse_made(output)
        if archive.host not in run.manifest.hosts:
            run.manifest.hosts.append(archive.host)
        name = object_name(index, archive.format)
        try:
            part_size = part_size_for(size)
            entry = self._stream(
                run,
                transport,
                stream_script(directory, archive.file, size),
                name=name,
                label=f"{label}: {directory}/{archive.file}",
                part_size=part_size,
                entry=BackupObject(
                    name,
                    PANEL_ARCHIVE,
                    archive.file,
                    COMPRESSION[archive.format],
                    0,
                    "",
                    host=archive.host,
                    format=archive.format,
                ),
            )
        finally:
            self._discard_panel_dir(transport, archive.host, directory)
        return entry

    @staticmethod
    def _discard_panel_dir(transport: Transport, host: str, directory: str) -> None:
        """Remove the fresh directory a panel archive was made in (best effort: a
        directory left behind is root-only, named lapse-archive.*, and logged)."""
        try:
            transport.run(discard_script(directory), f"remove {directory}")
        except (TransportError, CommandError) as error:
            log.warning(
                "panel archive left on the host", host=host, path=directory, error=str(error)
            )

    def _stream(
        self,
        run: _Run,
        transport: Transport,
        script: str,
        *,
        name: str,
        label: str,
        part_size: int,
        entry: BackupObject,
        stdin: bytes = b"",
    ) -> BackupObject:
        """Run `script` and stream its output into the object `name`; fill in `entry`.

        The command's exit status is checked before the upload is completed, so a
        failed dump never becomes an object.
        """
        key = object_key(run.manifest.account_id, run.backup_id, name)
        upload = self.store.begin_upload(
            key,
            part_size=part_size,
            retain_until=run.retain_until,
            read_ahead=transport.read_ahead,
        )
        try:
            (entry.size, entry.sha256), result = self._watched(
                run, transport, script, label, lambda process: pump(process, upload), stdin=stdin
            )
            upload.complete()
        except BaseException:
            upload.abort()
            raise
        entry.warnings = [
            line.removeprefix(_WARNING_PREFIX)
            for line in result.stderr.splitlines()
            if line.startswith(_WARNING_PREFIX)
        ]
        for warning in entry.warnings:
            log.warning("backup warning", backup=run.backup_id, object=name, warning=warning)
        log.info("backup object stored", backup=run.backup_id, object=name, bytes=entry.size)
        return entry

    @staticmethod
    def _watched(
        run: _Run,
        transport: Transport,
        script: str,
        label: str,
        consume: Callable[[RemoteProcess], _T],
        *,
        stdin: bytes = b"",
        check: bool = True,
    ) -> tuple[_T, CommandResult]:
        """Run `script`, feed it `stdin` and let `consume` read its output, while the run's
        stop check may kill it; return what `consume` returned and the command's result.

        Raises BackupCancelledError when the stop check answered, CommandError on a
        non-zero exit when `check`, TransportError.
        """
        with (
            transport.start(script, label) as process,
            stop_watch(run.stop_check, process) as stopped,
        ):
            if stdin:
                process.write(stdin)
            process.close_stdin()
            try:
                value = consume(process)
            except TransportError:
                if stopped.reason is None:
                    raise
            # Killed by the watch: the stream ended early, and waiting for an exit
            # status a closed channel never brings would hang.
            if stopped.reason is not None:
                raise BackupCancelledError(
                    f"backup {run.backup_id} stopped during the {label}: {stopped.reason}"
                )
            return value, process.check() if check else process.wait()

    def _put_history(self, run: _Run, history: bytes) -> BackupObject:
        name = "history.json"
        self.store.put(
            object_key(run.manifest.account_id, run.backup_id, name),
            history,
            retain_until=run.retain_until,
        )
        return BackupObject(
            name,
            "history",
            "lapse state database",
            "none",
            len(history),
            hashlib.sha256(history).hexdigest(),
        )

    def _finish(self, run: _Run) -> None:
        with self.sessions() as session:
            row = session.get(Backup, run.backup_id)
            assert row is not None
            row.status = BackupStatus.COMPLETED
            row.completed_at = self.clock()
            row.size_bytes = run.manifest.size
            row.manifest = run.manifest.as_dict()
            session.commit()

    def _fail(self, run: _Run, error: BaseException) -> None:
        """Record the failure and remove what the backup wrote (best effort)."""
        message = str(self._wrapped(run, error))
        prefix = object_key(run.manifest.account_id, run.backup_id)
        try:
            self.store.delete_prefix(prefix)
        except BackupStoreError as cleanup:
            message += f" (its partial objects could not be removed: {cleanup})"
        with self.sessions() as session:
            row = session.get(Backup, run.backup_id)
            assert row is not None
            row.status = BackupStatus.FAILED
            row.completed_at = self.clock()
            row.error = message
            row.manifest = run.manifest.as_dict()
            session.commit()
        stopped = isinstance(error, BackupCancelledError)
        (log.info if stopped else log.error)(
            "backup stopped" if stopped else "backup failed",
            account=run.manifest.account_id,
            backup=run.backup_id,
            error=message,
        )
        if self._alerts is not None and isinstance(error, Exception) and not stopped:
            self._alerts.alert("backup-failed", run.manifest.account_id, message, self.clock())

    @staticmethod
    def _wrapped(run: _Run, error: BaseException) -> BackupError:
        if isinstance(error, BackupCancelledError):
            return error
        known = (BackupError, CommandError, TransportError, BackupStoreError)
        cause = str(error) if isinstance(error, known) else f"{type(error).__name__}: {error}"
        return BackupError(f"backup {run.backup_id} of {run.manifest.account_id} failed: {cause}")
