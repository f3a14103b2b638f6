"""`notify`: an alert to ops from inside a playbook (e.g. "suspended, check the page")."""

from __future__ import annotations

from daemon.playbooks.steps.base import StepContext, StepOutcome
from daemon.playbooks.steps.specs import NotifySpec
from daemon.playbooks.templating import render_text


class NotifyStep:
    """Sends `message` to the ops alert channels (always logged as well)."""

    def describe(self, spec: NotifySpec, context: StepContext) -> str:
        return "alert ops: " + render_text(spec.message, context.variables, spec.name)

    def run(self, spec: NotifySpec, context: StepContext) -> StepOutcome:
        text = self.describe(spec, context).removeprefix("alert ops: ")
        if context.dry_run or context.alerts is None:
            return StepOutcome(False, {"message": text})
        context.alerts.alert("playbook", context.account_id, text, context.clock())
        return StepOutcome(True, {"message": text})
