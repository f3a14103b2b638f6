"""Secrets named by the config, read from the environment or a file, never logged."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from daemon.domain.errors import LapseError


class SecretError(LapseError):
    """A secret the config names could not be read."""


class SecretRef(BaseModel):
    """Where a secret lives: exactly one of an environment variable or a file.

    The value itself never appears in the config, in `repr()` or in logs.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: str | None = Field(
        default=None,
        description="Name of the environment variable that holds the secret.",
        examples=["WHMCS_API_SECRET"],
    )
    file: Path | None = Field(
        default=None,
        description="Path of a file whose content (trailing newline removed) is the secret.",
        examples=["/etc/lapse/secrets/smtp-password"],
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("expected exactly one of 'env' or 'file'")
        return self

    def reveal(self) -> str:
        """Return the secret's value.

        Raises SecretError naming the variable or file when it cannot be read.
        """
        if self.env is not None:
            value = os.environ.get(self.env)
            if value is None:
                raise SecretError(f"environment variable {self.env} is not set")
            return value
        assert self.file is not None  # guaranteed by _exactly_one
        try:
            return self.file.read_text(encoding="utf-8").rstrip("\n")
        except OSError as error:
            raise SecretError(f"cannot read secret file {self.file}: {error.strerror}") from error

    def __str__(self) -> str:
        return f"<secret from env {self.env}>" if self.env else f"<secret from file {self.file}>"
