"""Fixtures of the engagement tests: a deposited record through the two reviews (which also makes notices)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deposits.helpers import decide, ok, submitted


def deposit(client: Any, staff_headers: Any, learner: Any, **over: Any) -> dict:
    """An application approved at both stages: (application after the second review)."""
    app = submitted(client, learner, **over)
    first = ok(decide(client, staff_headers("branch_reviewer"), app, "approve"))
    return ok(decide(client, staff_headers("centre_reviewer"), first, "approve"))


@pytest.fixture
def deposited(client, staff_headers):
    def make(learner: Any, **over: Any) -> dict:
        return deposit(client, staff_headers, learner, **over)

    return make


from tests.conversion.conftest import outcome, seeded  # noqa: E402, F401  (the standards seeds, quick outcomes)
