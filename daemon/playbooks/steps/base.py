"""What every step type shares: its context, its outcome and its one small interface."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from daemon.domain.errors import LapseError
from daemon.domain.snapshot import Service
from daemon.playbooks.steps.specs import StepSpecBase
from daemon.transport import Transport

if TYPE_CHECKING:
    from daemon.backup.service import BackupService
    from daemon.notices.alerts import OpsAlerts


class MaintenancePages(Protocol):
    """The maintenance pages a put_file step renders (daemon.playbooks.pages): stated
    here so the step types do not import the playbook library that loads them."""

    def render(
        self,
        name: str,
        site: str,
        support_email: str,
        company: str,
        language: str | None = None,
    ) -> str:
        """Render page `name` for `site` in `language` (None: the brand's)."""

    def languages(self) -> list[str]:
        """The languages a page is written in besides the brand's, as lowercase tags."""


class StepFailedError(LapseError):
    """A step did not achieve its effect; the message says what was expected and found."""


class StepCancelledError(LapseError):
    """A long step stopped early because its phase's stop check asked it to (a payment
    was recorded); the message gives the check's reason. Nothing is half-kept."""


@dataclass
class StepContext:
    """Everything a step may use: the account's service, its host and Lapse's services.

    `variables` is the template context (account, service, host, vars, brand, now).
    `since` is when the playbook phase was asked for: a backup taken after it counts
    as this run's backup. `dry_run` steps describe instead of acting. `stop_check`,
    when set, returns why the phase must stop now (a payment), or None; a long step
    calls it every few seconds and raises StepCancelledError when it answers.
    `backup_id`, when set, is the backup an operator chose for a restore phase
    (`lapse restore --backup`); unset, a restore step takes the newest verified one.
    """

    account_id: str
    phase: str
    service: Service
    host_name: str
    transport: Transport
    variables: dict[str, Any]
    backups: BackupService
    pages: MaintenancePages
    clock: Callable[[], datetime]
    since: datetime
    alerts: OpsAlerts | None = None
    dry_run: bool = False
    stop_check: Callable[[], str | None] | None = None
    backup_id: str | None = None


@dataclass
class StepOutcome:
    """What a step did: whether it changed anything, and details for the step log."""

    changed: bool
    output: dict[str, Any] = field(default_factory=dict)


SpecT_contra = TypeVar("SpecT_contra", bound=StepSpecBase, contravariant=True)


class Step(Protocol[SpecT_contra]):
    """A step type: one module each, all with this interface, each taking its own spec
    (`RunStep` takes a `RunSpec`, ...)."""

    def describe(self, spec: SpecT_contra, context: StepContext) -> str:
        """Say what the step would do (dry run and logs). Raises TemplateError."""

    def run(self, spec: SpecT_contra, context: StepContext) -> StepOutcome:
        """Do the step, idempotently: running it twice has the effect of once.

        Raises StepFailedError (or a transport, store or template error) on failure.
        """
