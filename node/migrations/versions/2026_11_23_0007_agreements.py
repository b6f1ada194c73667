"""agreements: mutual-recognition agreements

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "agreement_version",
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("agreement", sa.String(length=200), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("previous", sa.String(length=64), nullable=True),
        sa.Column("proposer", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("hash", name=op.f("pk_agreement_version")),
    )
    op.create_index(op.f("ix_agreement_version_agreement"), "agreement_version", ["agreement"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_agreement_version_agreement"), table_name="agreement_version")
    op.drop_table("agreement_version")
