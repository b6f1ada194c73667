"""The schema is built by the Alembic migrations only; they must build exactly what the models declare."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import node.models  # noqa: F401 - registers every table


def test_migrated_schema_matches_the_models(engine: sa.Engine) -> None:
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert diff == [], "a model changed without a migration (or the reverse):\n" + "\n".join(map(str, diff))


def test_achievement_keeps_a_certificate_number_apart_from_its_catalogue_code(engine: sa.Engine) -> None:
    columns = {c["name"]: c for c in sa.inspect(engine).get_columns("achievement")}
    assert columns["certificate_no"]["nullable"] and columns["code"]["nullable"] is False
