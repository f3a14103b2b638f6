"""Step types, one module each, all with the interface of daemon.playbooks.steps.base.Step;
what each step says is its spec (daemon.playbooks.steps.specs)."""

from __future__ import annotations

from typing import Any

from daemon.playbooks.steps.backup import BackupStep
from daemon.playbooks.steps.base import (
    Step,
    StepCancelledError,
    StepContext,
    StepFailedError,
    StepOutcome,
)
from daemon.playbooks.steps.check import CheckStep
from daemon.playbooks.steps.http import HttpStep
from daemon.playbooks.steps.notify import NotifyStep
from daemon.playbooks.steps.put_file import PutFileStep
from daemon.playbooks.steps.restore import RestoreStep
from daemon.playbooks.steps.run import RunStep

__all__ = [
    "STEP_TYPES",
    "Step",
    "StepCancelledError",
    "StepContext",
    "StepFailedError",
    "StepOutcome",
]

# Keyed by the `type` that picks each spec; a test checks both match the modules here.
STEP_TYPES: dict[str, Step[Any]] = {
    "backup": BackupStep(),
    "run": RunStep(),
    "put_file": PutFileStep(),
    "http": HttpStep(),
    "check": CheckStep(),
    "notify": NotifyStep(),
    "restore": RestoreStep(),
}
