"""A bounded schemathesis run against a real node (`python -m tests.fuzz`; see tests/fuzz/__main__.py)."""
