"""The errors raised while turning a notice request into an email."""

from __future__ import annotations

from daemon.domain.errors import LapseError


class NoticeError(LapseError):
    """Base of every error the notify package raises."""


class RenderError(NoticeError):
    """A notice template is missing, broken, or uses a variable it was not given."""


class AddressError(NoticeError):
    """A sender or recipient address cannot be put into an email header."""
