"""`run`: a command on the host, every interpolated value shell-quoted."""

from __future__ import annotations

import shlex

from daemon.playbooks.steps.base import StepContext, StepFailedError, StepOutcome
from daemon.playbooks.steps.specs import RunSpec
from daemon.playbooks.templating import render_command
from daemon.transport import CommandError

_OUTPUT_TAIL = 4000


def command_line(command: str, spec: RunSpec) -> str:
    """Wrap a rendered command in `timeout`, so a hung command ends with its step."""
    seconds = max(1, int(spec.timeout.total_seconds()))
    return f"timeout --kill-after=10 {seconds} bash -o pipefail -c {shlex.quote(command)}"


class RunStep:
    """Runs `command` (and, on reactivation, `undo`) on the host."""

    def describe(self, spec: RunSpec, context: StepContext) -> str:
        return render_command(spec.command, context.variables, spec.name)

    def run(self, spec: RunSpec, context: StepContext) -> StepOutcome:
        command = self.describe(spec, context)
        return run_command(command, spec, context)


def run_command(command: str, spec: RunSpec, context: StepContext) -> StepOutcome:
    """Run a rendered command for `spec` and return its outcome.

    A command reports "no change" by printing a line `lapse: unchanged`. Raises
    StepFailedError with the exit status and the error output.
    """
    if context.dry_run:
        return StepOutcome(False, {"would_run": command})
    try:
        result = context.transport.run(command_line(command, spec), spec.name)
    except CommandError as error:
        if error.status == 124:
            raise StepFailedError(
                f"{spec.name}: timed out after {spec.timeout} on {context.host_name}"
            ) from error
        raise StepFailedError(str(error)) from error  # names the step, host and status
    stdout = result.stdout.decode("utf-8", errors="replace")
    changed = "lapse: unchanged" not in stdout.splitlines()
    return StepOutcome(
        changed, {"stdout": stdout[-_OUTPUT_TAIL:], "stderr": result.stderr[-_OUTPUT_TAIL:]}
    )
