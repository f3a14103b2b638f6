"""The read model of the correspondence log: a notice exactly as the desk wrote it."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from daemon.store.models import Correspondence


class Letters:
    """Reads the notices kept in one state database."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def raw(self, letter_id: int) -> bytes | None:
        """Return notice `letter_id` byte for byte as it was written (and sent), or None
        when there is no such notice."""
        with self.sessions() as session:
            letter = session.get(Correspondence, letter_id)
            return letter.raw if letter is not None else None
