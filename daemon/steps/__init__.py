"""Step types, one module each, all with the interface of daemon.steps.base.Step."""

from __future__ import annotations

from daemon.steps.backup import BackupStep
from daemon.steps.base import (
    Step,
    StepCancelledError,
    StepContext,
    StepFailedError,
    StepOutcome,
)
from daemon.steps.check import CheckStep
from daemon.steps.http import HttpStep
from daemon.steps.notify import NotifyStep
from daemon.steps.put_file import PutFileStep
from daemon.steps.restore import RestoreStep
from daemon.steps.run import RunStep

__all__ = [
    "STEP_TYPES",
    "Step",
    "StepCancelledError",
    "StepContext",
    "StepFailedError",
    "StepOutcome",
]

STEP_TYPES: dict[str, Step] = {
    "backup": BackupStep(),
    "run": RunStep(),
    "put_file": PutFileStep(),
    "http": HttpStep(),
    "check": CheckStep(),
    "notify": NotifyStep(),
    "restore": RestoreStep(),
}
