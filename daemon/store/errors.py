"""The state store's error, apart from the engine code, so callers that only report it
(the command line, the service loop) need not import the database layer."""

from __future__ import annotations

from daemon.domain.errors import LapseError


class StateStoreError(LapseError):
    """The state database cannot be opened or migrated."""


class MissingStateError(StateStoreError):
    """The state database a command reads does not exist yet: only `lapse run` and
    `lapse migrate` create one, so a mistyped path is not silently a new, empty database."""
