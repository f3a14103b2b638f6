"""The playbook format: phases of ordered steps, validated like the config.

A playbook is a TOML file:

    description = "What this playbook is for"
    [vars]                      # defaults; a host's `vars` override them
    sites_dir = "/etc/nginx/sites-enabled"

    [[suspend]]
    name = "Serve the maintenance page"
    type = "run"
    command = "..."            # jinja2; every {{ value }} is shell-quoted
    undo = "..."               # run when the account is reactivated
    when = "service.domains"   # a jinja2 expression; the step is skipped when false
    timeout = "2m"
    retries = 1

Phases (daemon.domain.phases): `suspend`, `unsuspend` (after the suspend steps'
`undo` commands ran in reverse), `delete`, `restore` and `verify`. Which keys a step
takes depends on its `type` (daemon.playbooks.steps.specs).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from daemon.config.schema import Section
from daemon.domain.phases import playbook_phase
from daemon.playbooks.steps.specs import StepSpec

__all__ = ["Playbook", "StepSpec"]

Steps = Annotated[list[StepSpec], Field(default_factory=list)]


class Playbook(Section):
    """A whole playbook: description, variables and the steps of each phase."""

    model_config = Section.model_config | {"populate_by_name": True}

    description: str = Field(default="", description="What the playbook is for.")
    vars: dict[str, str] = Field(default_factory=dict, description="Default variables.")
    suspended_site_in_place: bool = Field(
        default=True,
        description="Whether the site's files stay at the docroot while the account is "
        "suspended, so that a backup taken then still holds the site. When false, a "
        "deletion whose backup fails its proof is refused instead of relying on a fresh "
        "backup (which would hold the maintenance page).",
    )
    suspend: Steps
    unsuspend: Steps
    delete: Steps
    restore: Steps
    verify: Steps

    def steps(self, phase: str) -> list[StepSpec]:
        """The steps of `phase` in order. Raises ValueError for an unknown phase."""
        steps: list[StepSpec] = getattr(self, playbook_phase(phase).value)
        return steps
