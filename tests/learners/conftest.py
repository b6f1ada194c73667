from __future__ import annotations

from tests.auth.conftest import learner  # noqa: F401 - the same activated/unactivated learner fixture
