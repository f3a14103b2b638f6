"""The state store's error, apart from the engine code, so callers that only report it
(the command line, the service loop) need not import the database layer."""

from __future__ import annotations

from daemon.domain.errors import LapseError


class StateStoreError(LapseError):
    """The state database cannot be opened or migrated."""
