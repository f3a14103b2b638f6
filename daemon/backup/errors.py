"""Errors of the backup subsystem, each naming the backup or account concerned."""

from __future__ import annotations

from daemon.domain.errors import LapseError


class BackupError(LapseError):
    """A backup, verification or restore could not be done; the message says why."""


class BackupCancelledError(BackupError):
    """The backup was stopped on request (a payment arrived while it ran); its partial
    objects were removed and it is recorded as failed with the reason, without an alert."""


class UnknownBackupError(BackupError):
    """No backup with the given id exists in the state database."""
