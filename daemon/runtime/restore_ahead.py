"""`lapse restore`'s head start (daemon.backup.head_start), and the question it starts from.

Which archive a restore streams first, and onto which host, is in the state database.
The question is asked in a forked child, on the other core, while the restore's
process builds its store client; the child answers on a pipe (JSON) and exits. A
plain SQLite state database is read with the standard library
(daemon.backup.sqlite_rows: the answer is in within milliseconds); any other through
SQLAlchemy and the ORM models, about half a second of imports, which the restore's
own process also needs but only later. The child only reads: it opens the state
database as it is (read-only, no migration), picks the backup by the restore's own
rule (daemon.backup.choice), and writes nothing anywhere else (its standard streams
are /dev/null). Whatever it answers is a guess that the restore checks: the restore
looks everything up again itself and takes the head start's session and store answers
only for the very host and key it arrives at.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import NoReturn

from daemon.backup.choice import chosen
from daemon.backup.head_start import FirstArchive, HeadStart, first_archive
from daemon.backup.sqlite_rows import SqliteBackups, sqlite_file
from daemon.backup.stores import BackupStore, deferred_store
from daemon.backup.stores.deferred import DeferredStore
from daemon.config.schema import Config
from daemon.domain.clock import system_clock
from daemon.domain.errors import LapseError
from daemon.transport import Transports

# More than any answer takes (a host name and two keys), so a child gone wrong cannot
# make the restore read without end.
_ANSWER_LIMIT = 1 << 16


def start_ahead(
    config: Config, account: str, backup_id: str, host: str | None, whole: bool
) -> HeadStart:
    """Begin the head start of a restore of `account`'s backup `backup_id` ('latest' or an
    id) onto `host` (--to-host; None: where it came from), `whole` when nothing narrows it
    (see first_archive), and return it. Builds the store client (an S3 store's botocore)
    while the child looks the archive up and the head start's thread then starts the
    session on its host.

    Raises SecretError for an unreadable secret of the store, as the restore would.
    """
    store = deferred_store(config.backup.store)
    answer = ask_in_child(lambda: _first_archive(config, store, account, backup_id, host, whole))
    # Begun before the build: the session's login overlaps it. The store is built once,
    # by whichever asks first (the thread's request waits for this build).
    head = HeadStart(answer, store, Transports(dict(config.hosts)))
    if isinstance(store, DeferredStore):
        # A store that cannot be built is built again on the restore's first use of it,
        # which then says why it cannot.
        with contextlib.suppress(LapseError):
            store.built  # noqa: B018 (built here, while the question is answered)
    return head


def _first_archive(
    config: Config,
    store: BackupStore,
    account: str,
    backup_id: str,
    host: str | None,
    whole: bool,
) -> FirstArchive | None:
    """In the child: the archive a restore of `account`'s backup streams first, read from
    the state database as it is: a plain SQLite file with the standard library
    (daemon.backup.sqlite_rows), any other through SQLAlchemy (`store`, the parent's,
    unbuilt when it forked, is only what the backup service is made with: nothing is read
    from it). Raises what opening and reading the database raise."""
    path = sqlite_file(config.state.url)
    if path is not None:
        return first_archive(chosen(SqliteBackups(path), account, backup_id), host, whole)
    # Imported here, in the child: they are what the parent does not wait for.
    from daemon.backup.service import BackupService
    from daemon.runtime.state import open_state

    engine, sessions = open_state(config.state, create=False)
    try:
        backups = BackupService(
            sessions,
            config.backup,
            config.hosts,
            store,
            Transports({}),
            system_clock,
        )
        return first_archive(backups.chosen(account, backup_id), host, whole)
    finally:
        engine.dispose()


def ask_in_child(question: Callable[[], FirstArchive | None]) -> Callable[[], FirstArchive | None]:
    """Fork a child that calls `question` and writes its answer to a pipe, then exits; return
    a function that waits for the child's answer and returns it (None when the child
    answered nothing, failed or was killed, or could not be forked). That function
    raises nothing.

    The child's standard streams (the descriptors and Python's) are /dev/null and it
    leaves with os._exit: no output, buffer or exit handler of the parent runs twice.
    """
    read_end, write_end = os.pipe()
    try:
        pid = os.fork()
    except OSError:  # no process to spare (a process limit): the restore goes on alone
        os.close(read_end)
        os.close(write_end)
        return lambda: None
    if pid == 0:
        _answer_in_child(question, read_end, write_end)
    os.close(write_end)
    return _Answer(pid, read_end)


def _answer_in_child(
    question: Callable[[], FirstArchive | None], read_end: int, write_end: int
) -> NoReturn:
    status = 1
    try:
        os.close(read_end)
        quiet = os.open(os.devnull, os.O_RDWR)
        for stream in (0, 1, 2):
            os.dup2(quiet, stream)
        # And Python's own streams, which may write to another descriptor than 1 and 2 (a
        # test's capture, a wrapper of the terminal's).
        sys.stdin = sys.stdout = sys.stderr = open(os.devnull, "r+")  # noqa: SIM115
        first = question()
        if first is not None:
            data = json.dumps(
                {"host": first.host, "key": first.key, "list_key": first.list_key}
            ).encode()
            while data:
                data = data[os.write(write_end, data) :]
        status = 0
    finally:
        os._exit(status)


class _Answer:
    """The parent's side of the child's answer: read once, the child reaped."""

    def __init__(self, pid: int, read_end: int) -> None:
        self._pid = pid
        self._read_end = read_end
        self._lock = threading.Lock()
        self._reaped = False

    def __call__(self) -> FirstArchive | None:
        chunks: list[bytes] = []
        size = 0
        try:
            while size <= _ANSWER_LIMIT and (chunk := os.read(self._read_end, 4096)):
                chunks.append(chunk)
                size += len(chunk)
        except OSError:
            return None
        finally:
            os.close(self._read_end)
            self.reap(kill=size > _ANSWER_LIMIT)
        return _parse(b"".join(chunks))

    def reap(self, kill: bool = False) -> None:
        """Wait for the child (killing it first with `kill`), once."""
        with self._lock:
            if self._reaped:
                return
            self._reaped = True
            if kill:
                os.kill(self._pid, signal.SIGKILL)
            os.waitpid(self._pid, 0)


def _parse(data: bytes) -> FirstArchive | None:
    """The child's answer, or None for none or one out of shape."""
    if not data:
        return None
    try:
        fields = json.loads(data)
        host, key, list_key = fields["host"], fields["key"], fields["list_key"]
    except (ValueError, TypeError, KeyError):
        return None
    if not (isinstance(host, str) and isinstance(key, str)):
        return None
    return FirstArchive(host, key, list_key if isinstance(list_key, str) else None)
