"""The in-process federation fixtures (tests/federation/conftest.py), for the admission test."""

from tests.federation.conftest import federation, joined, make_database, network  # noqa: F401
