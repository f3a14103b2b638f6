"""The Kit every implementation factory of the contract suites builds with."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from tests.contracts.kit import Kit


@pytest.fixture
def kit(request: pytest.FixtureRequest) -> Iterator[Kit]:
    """A Kit for this test; what the factory started through it stops after the test."""
    with ExitStack() as stack:
        yield Kit(request, stack)
