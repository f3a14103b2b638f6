"""A restore's head start: the host's session and the store's answer for the first archive,
begun while `lapse restore` still loads the rest of itself.

Most of a restore's start is CPU in one process (its imports, the config, the state
database), while the two things its stream waits for are slow and happen elsewhere: the
store answering the request for the archive (some stores read the whole object before
the first byte) and the SSH connection and login on the host. A head start is told which
archive the restore will stream first and onto which host (a `FirstArchive`, from
`answer`, which the caller computes in a process of its own: see
daemon.runtime.restore_ahead), and then, in a thread, at once starts a session on that
host that waits for its script (WAITING_SCRIPT) and requests the archive and its list of
member digests from the store.

It decides nothing. The restore takes the session only for the very host its own plan
names, and gives it its script only then (`claim_session`); it takes a body only for the
very key it opens itself (`AheadStore.open`), and checks every byte of it against the
manifest as it would check its own. A session nobody took is ended before it read a
script: its script exits at the end of its input and touches nothing. A body nobody took
is closed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from daemon.backup import member_digests
from daemon.backup.manifest import PANEL_ARCHIVE, object_key
from daemon.backup.stores import BackupStore, Readable
from daemon.backup.stores.deferred import DeferredStore
from daemon.domain.errors import LapseError
from daemon.domain.states import PROVABLE_BACKUPS
from daemon.transport import RemoteProcess, Transports

if TYPE_CHECKING:
    from daemon.backup.views import BackupView

log = structlog.get_logger("lapse.backup")

# What a session started ahead runs: it reads its script from its input, up to a NUL,
# then runs it in the same shell, the rest of its input left to the script (bash's `read`
# takes one byte at a time from a pipe, never more than it returns). The end of the
# input before a whole script (nobody took the session, or the link went) ends it, status
# 0, having run nothing.
WAITING_SCRIPT = """IFS= read -r -d '' lapse_script || exit 0
eval "$lapse_script"
"""


class ScriptError(ValueError):
    """A script cannot be given to a session started ahead (it holds a NUL)."""


def given(script: str) -> bytes:
    """Return `script` as a session running WAITING_SCRIPT reads it. Raises ScriptError for
    a script holding a NUL, which would end it early."""
    if "\0" in script:
        raise ScriptError("a script holding a NUL cannot be handed to a waiting session")
    return script.encode() + b"\0"


@dataclass(frozen=True)
class FirstArchive:
    """The archive a restore streams first: the host it goes to, its key in the store and,
    when its verification recorded one, the key of its list of member digests."""

    host: str
    key: str
    list_key: str | None = None


def first_archive(
    backup: BackupView, host: str | None = None, whole: bool = False
) -> FirstArchive | None:
    """Return the archive a restore of `backup`'s site files streams first (its first site
    archive, as daemon.backup.restore orders them), onto `host` (--to-host) or the one it
    came from; None when the restore would stream none (no manifest, a backup that cannot
    be restored, no site archive, none with a host) or, `whole` (nothing narrows the
    restore), when the backup holds a control panel's own archive, which the playbook
    restores instead."""
    if backup.manifest is None or backup.status not in PROVABLE_BACKUPS:
        return None
    if whole and any(entry.kind == PANEL_ARCHIVE for entry in backup.manifest.objects):
        return None
    entry = next((entry for entry in backup.manifest.objects if entry.kind == "files"), None)
    if entry is None or (host or entry.host) is None:
        return None
    prefix = object_key(backup.account_id, backup.id)
    listed = member_digests.recorded(backup.verification, entry) is not None
    return FirstArchive(
        str(host or entry.host),
        prefix + entry.name,
        prefix + member_digests.list_name(entry) if listed else None,
    )


class HeadStart:
    """The session and the store's answers begun for a restore's first archive.

    `answer` is called in the head start's own thread and returns the first archive, or
    None (then nothing is begun); it raises nothing. `store` is the store the restore
    reads (a DeferredStore is built once, by whichever of the thread's requests and the
    caller uses it first) and `transports` the
    hosts' transports the restore uses, so that the session counts against its host's
    max_sessions.
    """

    def __init__(
        self,
        answer: Callable[[], FirstArchive | None],
        store: BackupStore,
        transports: Transports,
    ) -> None:
        self.store = AheadStore(store, self)
        self.transports = transports
        self._lock = threading.Lock()
        self._given_up = False
        self._first: FirstArchive | None = None
        self._session: RemoteProcess | None = None
        self._session_context: AbstractContextManager[RemoteProcess] | None = None
        self._bodies: dict[str, Readable] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=self._begin, args=(answer,), name="lapse-head-start", daemon=True
        )
        self._thread.start()

    def _begin(self, answer: Callable[[], FirstArchive | None]) -> None:
        """Start the session, then request the list and the archive. Any failure leaves the
        part concerned to the restore itself, which meets it again and reports it."""
        try:
            first = answer()
            with self._lock:
                if first is None or self._given_up:
                    return
                self._first = first
                try:
                    context = self.transports.get(first.host).start_bulk(
                        WAITING_SCRIPT, f"restore of {first.key} (session started ahead)"
                    )
                    self._session = context.__enter__()
                    self._session_context = context
                except (LapseError, KeyError, OSError) as error:  # the restore connects itself
                    log.debug("restore head start: no session", host=first.host, error=str(error))
            # The list first: small, it is answered at once; the archive may take a while.
            for key in (first.list_key, first.key):
                if key is not None:
                    self._request(key)
        finally:
            self._done.set()

    def _request(self, key: str) -> None:
        try:
            body = self.store.ahead_of(key)
        except (LapseError, OSError) as error:  # the restore requests it again, and says why
            log.debug("restore head start: no answer", key=key, error=str(error))
            return
        with self._lock:
            if self._given_up:
                body.close()
            else:
                self._bodies[key] = body

    def claim_session(self, host: str, held: ExitStack) -> RemoteProcess | None:
        """Return the session started ahead on `host`, its end put on `held` (leaving by an
        error kills it, as Transport.start does); the caller gives it its script (`given`).

        None when there is none for that host (the answer is not in yet, it named another
        host, or the session could not start): whatever was begun is then ended first, so
        the slot it held on its host is free for the caller's own session.
        """
        with self._lock:
            session, context = self._session, self._session_context
            self._session = self._session_context = None
            first = self._first
            if first is None:
                # Not answered yet: the restore, further than the question, goes on alone.
                self._given_up = True
        if session is None or context is None:
            return None
        if first is None or first.host != host:
            _end(session, context)
            return None
        held.push(context.__exit__)
        return session

    def claim_body(self, key: str) -> Readable | None:
        """Return the store's answer for `key` requested ahead (waiting for it if it is on its
        way), once; None when it was not requested or not answered."""
        with self._lock:
            first = self._first
        if first is None or key not in (first.key, first.list_key):
            return None
        self._done.wait()
        with self._lock:
            return self._bodies.pop(key, None)

    def close(self) -> None:
        """End what nobody took: the session, before it read a script, and the bodies."""
        with self._lock:
            self._given_up = True
            session, context = self._session, self._session_context
            self._session = self._session_context = None
            bodies = list(self._bodies.values())
            self._bodies.clear()
        if session is not None and context is not None:
            _end(session, context)
        for body in bodies:
            body.close()


def _end(session: RemoteProcess, context: AbstractContextManager[RemoteProcess]) -> None:
    """End a session that was given no script: its end of input makes it exit untouched."""
    try:
        session.close_stdin()
        session.kill()
    finally:
        context.__exit__(None, None, None)


class AheadStore(DeferredStore):
    """The restore's store: `open` hands out an answer its head start received ahead for
    that key (once), and otherwise asks `store`, as every other method does."""

    def __init__(self, store: BackupStore, head: HeadStart) -> None:
        super().__init__(store.kind, lambda: store)
        self._head = head

    def ahead_of(self, key: str) -> Readable:
        """Request `key` from the store itself (for the head start). Raises as `open`."""
        return super().open(key)

    def open(self, key: str, version: str | None = None) -> Readable:
        if version is None and (body := self._head.claim_body(key)) is not None:
            return body
        return super().open(key, version)
