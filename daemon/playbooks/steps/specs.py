"""What a playbook step says: one model per step type, picked by the step's `type`.

Every step has the keys of `StepSpecBase` (name, when, timeout, retries, undo, ...);
each type adds only its own, and a key that belongs to no part of its type is an
error (`extra="forbid"`), so `url` on a `run` step is refused at load time instead
of being ignored. `StepSpec` is the tagged union the playbook format validates a
step against; `STEP_SPECS` lists its members and `option_owners` says which step
types take a key, for the error that names where a misplaced key belongs.

The specs live together, not beside their step modules, because they refer to one
another: the undo of any step is a `run` step (its `undo` command), or, for an
`http` step with `undo_url`, the same `http` call aimed at that URL.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import Field, model_validator

from daemon.backup.panel_archive import DEFAULT_WORK_DIR
from daemon.config.schema import Duration, Section
from daemon.config.secrets import SecretRef
from daemon.domain.phases import Phase


class StepSpecBase(Section):
    """The keys every step has, whatever its type."""

    # Whether a step of this type disables or deletes something when `disables` is unset.
    disables_by_default: ClassVar[bool] = False

    name: str = Field(description="What the step does, for people and the step log.")
    when: str | None = Field(default=None, description="Run only if this expression is true.")
    timeout: Duration = Field(default=timedelta(minutes=10), description="Time limit.")
    retries: int = Field(default=0, ge=0, le=10, description="Extra attempts after a failure.")
    retry_delay: Duration = Field(default=timedelta(seconds=5), description="Wait between tries.")
    undo: str | None = Field(default=None, description="Command that reverses the step.")
    disables: bool | None = Field(
        default=None,
        description="Whether the step disables or deletes something; unset: decided by type.",
    )

    @property
    def undoable(self) -> bool:
        """Whether the step says how to reverse it."""
        return self.undo is not None

    def undo_spec(self) -> StepSpec:
        """The step that reverses this one: a `run` step of its `undo` command.

        Raises ValueError for a step that says no way to reverse it.
        """
        if self.undo is None:
            raise ValueError(f"step {self.name!r} says no way to reverse it")
        return RunSpec(
            name=self.name,
            type="run",
            command=self.undo,
            timeout=self.timeout,
            retries=self.retries,
            retry_delay=self.retry_delay,
            disables=self.disables,
        )

    def is_disabling(self, phase: str) -> bool:
        """Whether this step disables or deletes something (balance is re-checked before)."""
        if self.disables is not None:
            return self.disables
        return phase in (Phase.SUSPEND, Phase.DELETE) and self.disables_by_default


class PanelArchiveSpec(Section):
    """A control panel's own archive, taken into the same backup (daemon.backup.panel_archive):
    `command` writes `file` into the fresh root-only directory `$LAPSE_ARCHIVE_DIR`."""

    command: str = Field(
        description="Command (a template) writing the panel's archive into $LAPSE_ARCHIVE_DIR."
    )
    file: str = Field(
        description="Name (a template) of the file the command leaves in $LAPSE_ARCHIVE_DIR."
    )
    format: Literal["tar", "tar.gz", "zip"] = Field(
        description="What the file is, for listing it when the backup is verified and proven."
    )
    work_dir: str = Field(
        default=DEFAULT_WORK_DIR,
        description="Where the fresh directory is made (a template): made if missing, and "
        "refused unless it is a real directory of the login user that no one else may write.",
    )


class BackupSpec(StepSpecBase):
    """A verified backup of the account (daemon.backup)."""

    type: Literal["backup"] = Field(description="The step type.")
    verify: bool = Field(default=True, description="Verify the backup before going on.")
    panel_archive: PanelArchiveSpec | None = Field(
        default=None,
        description="The panel's own archive, streamed off the host into the same backup.",
    )


class RunSpec(StepSpecBase):
    """A command on the host; every interpolated value is shell-quoted."""

    disables_by_default: ClassVar[bool] = True

    type: Literal["run"] = Field(description="The step type.")
    command: str = Field(description="Command (a template).")


class PutFileSpec(StepSpecBase):
    """A file written on the host: a maintenance page or an inline template."""

    disables_by_default: ClassVar[bool] = True

    type: Literal["put_file"] = Field(description="The step type.")
    path: str = Field(description="Destination path.")
    template: str | None = Field(default=None, description="Maintenance page template.")
    content: str | None = Field(default=None, description="Inline template text.")
    mode: str = Field(default="0644", pattern=r"^0?[0-7]{3,4}$", description="File mode.")
    owner: str | None = Field(default=None, description="File owner.")
    group: str | None = Field(default=None, description="File group.")

    @model_validator(mode="after")
    def _one_source(self) -> PutFileSpec:
        if (self.template is None) == (self.content is None):
            raise ValueError("a 'put_file' step needs exactly one of 'template' or 'content'")
        return self


class BasicAuth(Section):
    """HTTP Basic credentials for an `http` step: a user name and a secret password."""

    user: str = Field(description="User name (a template).", examples=["admin"])
    password: SecretRef = Field(
        description="Where the password is kept.", examples=[{"env": "LAPSE_PANEL_PASSWORD"}]
    )


class HttpSpec(StepSpecBase):
    """A call to a control panel or client-portal API."""

    disables_by_default: ClassVar[bool] = True

    type: Literal["http"] = Field(description="The step type.")
    url: str = Field(description="URL (a template).")
    method: str = Field(default="GET", description="HTTP method.")
    headers: dict[str, str] = Field(default_factory=dict, description="Request headers.")
    json_body: dict[str, Any] | None = Field(
        default=None, alias="json", description="JSON request body."
    )
    form: dict[str, str] | None = Field(
        default=None, description="Form-encoded request body, values are templates."
    )
    bearer: SecretRef | None = Field(default=None, description="Bearer token.")
    basic: BasicAuth | None = Field(default=None, description="Basic auth.")
    expect_status: int | None = Field(default=None, description="Expected HTTP status.")
    expect_text: str | None = Field(default=None, description="Text the answer must hold.")
    reject_text: str | None = Field(default=None, description="Text the answer must not hold.")
    state_url: str | None = Field(
        default=None,
        description="URL read (GET) before and after the call: when its answer already "
        "holds `state_text` the call is skipped as unchanged; after the call it must hold it.",
    )
    state_text: str | None = Field(
        default=None, description="Text `state_url` answers once the call took effect."
    )
    undo_url: str | None = Field(default=None, description="URL that reverses the call.")
    undo_json: dict[str, Any] | None = Field(
        default=None, description="JSON body of the reversing call."
    )
    undo_form: dict[str, str] | None = Field(
        default=None, description="Form-encoded body of the reversing call."
    )
    undo_state_text: str | None = Field(
        default=None, description="Text `state_url` answers once the reversing call took effect."
    )

    @model_validator(mode="after")
    def _consistent(self) -> HttpSpec:
        if self.json_body is not None and self.form is not None:
            raise ValueError("an 'http' step sends 'json' or 'form', not both")
        if (self.state_url is None) != (self.state_text is None):
            raise ValueError("'state_url' and 'state_text' go together")
        if self.bearer is not None and self.basic is not None:
            raise ValueError("an 'http' step uses 'bearer' or 'basic', not both")
        return self

    @property
    def undoable(self) -> bool:
        """Whether the step says how to reverse it: an `undo` command or an `undo_url`."""
        return self.undo is not None or self.undo_url is not None

    def undo_spec(self) -> StepSpec:
        """The step that reverses this one: its `undo_url` call, else its `undo` command."""
        if self.undo_url is None:
            return super().undo_spec()
        return self.model_copy(
            update={
                "url": self.undo_url,
                "json_body": self.undo_json,
                "form": self.undo_form,
                "state_text": self.undo_state_text if self.state_url else None,
                "undo_url": None,
            }
        )


class CheckSpec(StepSpecBase):
    """A probe of the site: status, headers and text of its answer."""

    type: Literal["check"] = Field(description="The step type.")
    url: str = Field(description="URL (a template).")
    host_header: str | None = Field(default=None, description="Host header to send.")
    expect_status: int | None = Field(default=None, description="Expected HTTP status (200).")
    expect_header: dict[str, str] = Field(
        default_factory=dict, description="Headers the response must carry."
    )
    expect_text: str | None = Field(default=None, description="Text the body must hold.")
    reject_text: str | None = Field(default=None, description="Text the body must not hold.")


class NotifySpec(StepSpecBase):
    """An alert to ops from inside a playbook."""

    type: Literal["notify"] = Field(description="The step type.")
    to: Literal["ops"] = Field(description="Who is told: ops.")
    message: str = Field(description="Alert text (a template).")


class PanelRestoreSpec(Section):
    """How a panel archive comes back: into a fresh root-only directory, then `command`."""

    command: str = Field(
        description="Command (a template) restoring the archive named by $LAPSE_ARCHIVE."
    )
    work_dir: str = Field(
        default=DEFAULT_WORK_DIR,
        description="Where the fresh directory is made (a template): made if missing, and "
        "refused unless it is a real directory of the login user that no one else may write.",
    )


class RestoreSpec(StepSpecBase):
    """The newest verified backup brought back onto the host."""

    type: Literal["restore"] = Field(description="The step type.")
    panel_archive: PanelRestoreSpec | None = Field(
        default=None,
        description="Restore the panel's archive with this command instead of files and databases.",
    )


StepSpec = Annotated[
    BackupSpec | RunSpec | PutFileSpec | HttpSpec | CheckSpec | NotifySpec | RestoreSpec,
    Field(discriminator="type"),
]
STEP_SPECS: tuple[type[StepSpecBase], ...] = get_args(get_args(StepSpec)[0])


def step_type(spec: type[StepSpecBase]) -> str:
    """Return the `type` that picks `spec` (e.g. "run" for RunSpec)."""
    tag: str = get_args(spec.model_fields["type"].annotation)[0]
    return tag


def option_owners(key: str) -> list[str]:
    """Return the step types that take `key` as written in a playbook, in union order."""
    return [
        step_type(spec)
        for spec in STEP_SPECS
        if any((field.alias or name) == key for name, field in spec.model_fields.items())
    ]
