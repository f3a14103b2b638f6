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

Phases: `suspend`, `unsuspend` (after the suspend steps' `undo` commands ran in
reverse), `delete`, `restore` and `verify`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from daemon.config.schema import Duration, Section
from daemon.config.secrets import SecretRef

PHASES = ("suspend", "unsuspend", "delete", "restore", "verify")
StepType = Literal["backup", "run", "put_file", "http", "check", "notify", "restore"]


class BasicAuth(Section):
    """HTTP Basic credentials for an `http` step: a user name and a secret password."""

    user: str = Field(description="User name (a template).", examples=["admin"])
    password: SecretRef = Field(
        description="Where the password is kept.", examples=[{"env": "LAPSE_PANEL_PASSWORD"}]
    )


class StepSpec(Section):
    """One step of a phase. Which keys apply depends on `type` (checked after parsing)."""

    name: str = Field(description="What the step does, for people and the step log.")
    type: StepType = Field(description="The step type.")
    when: str | None = Field(default=None, description="Run only if this expression is true.")
    timeout: Duration = Field(default=timedelta(minutes=10), description="Time limit.")
    retries: int = Field(default=0, ge=0, le=10, description="Extra attempts after a failure.")
    retry_delay: Duration = Field(default=timedelta(seconds=5), description="Wait between tries.")
    undo: str | None = Field(default=None, description="Command that reverses the step.")
    disables: bool | None = Field(
        default=None,
        description="Whether the step disables or deletes something; unset: decided by type.",
    )
    # run
    command: str | None = Field(default=None, description="Command (run).")
    # put_file
    template: str | None = Field(default=None, description="Maintenance page template (put_file).")
    content: str | None = Field(default=None, description="Inline template text (put_file).")
    path: str | None = Field(default=None, description="Destination path (put_file).")
    mode: str = Field(default="0644", pattern=r"^0?[0-7]{3,4}$", description="File mode.")
    owner: str | None = Field(default=None, description="File owner (put_file).")
    group: str | None = Field(default=None, description="File group (put_file).")
    # http and check
    url: str | None = Field(default=None, description="URL (http, check).")
    method: str = Field(default="GET", description="HTTP method (http).")
    headers: dict[str, str] = Field(default_factory=dict, description="Request headers.")
    json_body: dict[str, Any] | None = Field(
        default=None, alias="json", description="JSON request body (http)."
    )
    bearer: SecretRef | None = Field(default=None, description="Bearer token (http).")
    basic: BasicAuth | None = Field(default=None, description="Basic auth (http).")
    form: dict[str, str] | None = Field(
        default=None, description="Form-encoded request body, values are templates (http)."
    )
    undo_form: dict[str, str] | None = Field(
        default=None, description="Form-encoded body of the reversing call (http)."
    )
    state_url: str | None = Field(
        default=None,
        description="URL read (GET) before and after the call (http): when its answer "
        "already holds `state_text` the call is skipped as unchanged; after the call it "
        "must hold it.",
    )
    state_text: str | None = Field(
        default=None, description="Text `state_url` answers once the call took effect."
    )
    undo_state_text: str | None = Field(
        default=None, description="Text `state_url` answers once the reversing call took effect."
    )
    expect_status: int | None = Field(default=None, description="Expected HTTP status.")
    expect_header: dict[str, str] = Field(
        default_factory=dict, description="Headers the response must carry (check)."
    )
    expect_text: str | None = Field(default=None, description="Text the body must hold (check).")
    reject_text: str | None = Field(
        default=None, description="Text the body must not hold (check)."
    )
    undo_url: str | None = Field(default=None, description="URL that reverses the call (http).")
    undo_json: dict[str, Any] | None = Field(
        default=None, description="JSON body of the reversing call (http)."
    )
    host_header: str | None = Field(default=None, description="Host header to send (check).")
    # notify
    to: Literal["ops"] | None = Field(default=None, description="Who is told (notify): ops.")
    message: str | None = Field(default=None, description="Alert text (notify to ops).")
    # backup
    verify: bool = Field(default=True, description="Verify the backup before going on (backup).")

    @model_validator(mode="after")
    def _fields_for_type(self) -> StepSpec:
        required = {
            "run": ("command",),
            "put_file": ("path",),
            "http": ("url",),
            "check": ("url",),
            "notify": ("to",),
            "backup": (),
            "restore": (),
        }[self.type]
        missing = [key for key in required if getattr(self, key) is None]
        if missing:
            raise ValueError(f"a '{self.type}' step needs {', '.join(repr(k) for k in missing)}")
        if self.type == "put_file" and (self.template is None) == (self.content is None):
            raise ValueError("a 'put_file' step needs exactly one of 'template' or 'content'")
        if self.json_body is not None and self.form is not None:
            raise ValueError("an 'http' step sends 'json' or 'form', not both")
        if (self.state_url is None) != (self.state_text is None):
            raise ValueError("'state_url' and 'state_text' go together")
        if self.bearer is not None and self.basic is not None:
            raise ValueError("an 'http' step uses 'bearer' or 'basic', not both")
        if self.type == "notify" and self.to == "ops" and not self.message:
            raise ValueError("a 'notify' step to ops needs 'message'")
        return self

    @property
    def undoable(self) -> bool:
        """Whether the step says how to reverse it."""
        return self.undo is not None or self.undo_url is not None

    def undo_spec(self) -> StepSpec:
        """The step that reverses this one: its `undo` command, or its `undo_url` call."""
        if self.undo_url is not None:
            return self.model_copy(
                update={
                    "url": self.undo_url,
                    "json_body": self.undo_json,
                    "form": self.undo_form,
                    "state_text": self.undo_state_text if self.state_url else None,
                    "undo_url": None,
                }
            )
        return self.model_copy(update={"type": "run", "command": self.undo, "when": None})

    def is_disabling(self, phase: str) -> bool:
        """Whether this step disables or deletes something (balance is re-checked before)."""
        if self.disables is not None:
            return self.disables
        return phase in ("suspend", "delete") and self.type in ("run", "put_file", "http")


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
        if phase not in PHASES:
            raise ValueError(f"unknown playbook phase {phase!r}")
        steps: list[StepSpec] = getattr(self, phase)
        return steps
