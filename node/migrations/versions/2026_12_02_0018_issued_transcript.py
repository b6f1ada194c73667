"""issued_transcript: printed transcripts (成绩证明) by the token of their QR verification link

Revision ID: 0018
Revises: 0016
Create Date: 2026-12-02 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0016"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "issued_transcript",
        sa.Column("token", sa.String(length=32), nullable=False),
        sa.Column("learner_id", _ID, nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("document_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["learner_id"], ["learner.id"],
                                name=op.f("fk_issued_transcript_learner_id_learner")),
        sa.PrimaryKeyConstraint("token", name=op.f("pk_issued_transcript")),
    )
    op.create_index(op.f("ix_issued_transcript_learner_id"), "issued_transcript", ["learner_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_issued_transcript_learner_id"), table_name="issued_transcript")
    op.drop_table("issued_transcript")
