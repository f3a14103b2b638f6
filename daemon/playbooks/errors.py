"""How a playbook run stops short: interrupted for shutdown, cancelled by a payment,
taken over by another daemon, or failed by one of the errors a step may raise."""

from __future__ import annotations

from daemon.backup.errors import BackupError
from daemon.backup.stores.base import BackupStoreError
from daemon.config.load import ConfigError
from daemon.domain.errors import LapseError
from daemon.playbooks.steps import StepFailedError
from daemon.playbooks.templating import TemplateError
from daemon.transport import CommandError, TransportError

# What a failing step (or a guard before it) raises: the run stops, is recorded as
# failed, and ops are alerted. Anything else is a bug and surfaces as one.
STEP_ERRORS = (
    StepFailedError,
    TemplateError,
    TransportError,
    CommandError,
    BackupError,
    BackupStoreError,
    ConfigError,
)


class RunInterruptedError(LapseError):
    """The daemon is stopping: the run ends after its current step and resumes at start."""


class RunCancelledError(LapseError):
    """The run must stop without failing: the account was paid or changed course."""


class ClaimLostError(LapseError):
    """Another daemon took the run's action over (this one's lease ran out): the run
    stops where it is and writes nothing more, the new holder resumes it."""
