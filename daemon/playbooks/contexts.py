"""What a step of a run is given: the account's service, its host, the variables its
templates see, Lapse's services and the stop check of its phase."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from daemon.backup.service import BackupService
from daemon.config.schema import BrandConfig, HostConfig
from daemon.domain.clock import Clock
from daemon.domain.snapshot import Service
from daemon.notices.alerts import OpsAlerts
from daemon.playbooks.pages import MaintenancePages
from daemon.playbooks.payment_guard import PaymentGuard
from daemon.playbooks.phase_rules import PHASE_STATES
from daemon.playbooks.schema import Playbook
from daemon.playbooks.steps import StepContext
from daemon.transport import Transports


class StepContexts:
    """Builds the context the steps of one phase get on one host."""

    def __init__(
        self,
        hosts: Mapping[str, HostConfig],
        brand: BrandConfig,
        transports: Transports,
        backups: BackupService,
        pages: MaintenancePages,
        clock: Clock,
        payments: PaymentGuard,
        alerts: OpsAlerts | None = None,
    ) -> None:
        self.hosts = hosts
        self.brand = brand
        self.transports = transports
        self.backups = backups
        self.pages = pages
        self.clock = clock
        self.payments = payments
        self.alerts = alerts
        # The backup an operator chose for the restore phase being run now, if any.
        self.chosen_backup: str | None = None

    def preview(
        self, account_id: str, phase: str, service: Service, playbook: Playbook
    ) -> StepContext:
        """The context a step of `phase` would get, for a dry-run preview."""
        context = self.build(account_id, phase, service, playbook, self.clock())
        context.dry_run = True
        return context

    def build(
        self, account_id: str, phase: str, service: Service, playbook: Playbook, since: datetime
    ) -> StepContext:
        """The context of the steps of `phase` on the service's host; `since` is when the
        phase was asked for. Raises KeyError for a host the config lacks."""
        host = self.hosts[service.host]
        variables = step_variables(account_id, service, host, playbook, self.brand, phase)
        return StepContext(
            account_id=account_id,
            phase=phase,
            service=service,
            host_name=service.host,
            transport=self.transports.get(service.host),
            variables=variables,
            backups=self.backups,
            pages=self.pages,
            clock=self.clock,
            since=since,
            alerts=self.alerts,
            stop_check=self._stop_check(account_id, phase),
            backup_id=self.chosen_backup,
        )

    def _stop_check(self, account_id: str, phase: str) -> Callable[[], str | None] | None:
        """The check a long step of `phase` asks every few seconds (suspend and delete only:
        a payment does not stop an unsuspend, a verify or a restore)."""
        allowed = PHASE_STATES.get(phase)
        if allowed is None:
            return None
        return self.payments.stop_check(account_id, {state.value for state in allowed})


def step_variables(
    account_id: str,
    service: Service,
    host: HostConfig,
    playbook: Playbook,
    brand: BrandConfig,
    phase: str,
) -> dict[str, Any]:
    """Return what a playbook's templates see for one service of an account: `account`,
    `service`, `host`, `vars` (the playbook's, overridden by the host's), `brand` and
    `phase`."""
    return {
        "account": {"id": account_id},
        "service": {
            "host": service.host,
            "system_user": service.system_user,
            "docroot": service.docroot,
            "domains": list(service.domains),
            "databases": [
                {"engine": db.engine, "name": db.name, "user": db.user} for db in service.databases
            ],
        },
        "host": {
            "name": service.host,
            "transport": host.transport,
            "allowed_roots": [str(root) for root in host.allowed_roots],
        },
        "vars": playbook.vars | host.vars,
        "brand": {"company": brand.company_name, "support_email": brand.support_email},
        "phase": phase,
    }
