"""What an implementation's factory may use to build it for one contract test."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


class Kit:
    """A test's temporary directory, the lab's session services by fixture name, and a
    stack that shuts down, after the test, whatever the factory started for it."""

    def __init__(self, request: pytest.FixtureRequest, stack: ExitStack) -> None:
        self._request = request
        self._stack = stack
        self.tmp_path: Path = request.getfixturevalue("tmp_path")

    def service(self, fixture: str) -> Any:
        """Return the lab fixture named `fixture` (e.g. "s3", "sshd"), started on first use."""
        return self._request.getfixturevalue(fixture)

    def enter(self, context: AbstractContextManager[T]) -> T:
        """Enter `context` now and leave it after the test; return what it yields."""
        return self._stack.enter_context(context)

    def later(self, cleanup: Any) -> None:
        """Call `cleanup()` after the test."""
        self._stack.callback(cleanup)


def check_fails(check: Callable[[], object]) -> str:
    """Run `check` (a contract check bound to a broken implementation) and return why it
    failed. Raises AssertionError when it passed: a check that cannot fail guards nothing."""
    try:
        check()
    except (AssertionError, pytest.fail.Exception) as failure:
        return str(failure)
    raise AssertionError("the check passed against a broken implementation")
