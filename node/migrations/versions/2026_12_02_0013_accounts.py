"""learner access: token versions, online registrations awaiting verification, activation codes, sign-in throttle

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 00:13:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from node.models.types import BigId

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("staff_account", "learner"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("token_version", sa.Integer(), nullable=False, server_default=sa.text("0")))
    op.create_table(
        "learner_registration",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("reference_hash", sa.String(length=64), nullable=False),
        sa.Column("id_type", sa.String(length=20), nullable=False),
        sa.Column("id_blind", sa.String(length=64), nullable=False),
        sa.Column("name_cipher", sa.LargeBinary(), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_learner_registration")),
        sa.UniqueConstraint("reference_hash", name=op.f("uq_learner_registration_reference_hash")),
    )
    op.create_index(op.f("ix_learner_registration_id_blind"), "learner_registration", ["id_blind"])
    op.create_index(op.f("ix_learner_registration_expires_at"), "learner_registration", ["expires_at"])
    op.create_table(
        "activation_code",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("learner_id", BigId, nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=20), nullable=False),
        sa.Column("issued_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["learner_id"], ["learner.id"], name=op.f("fk_activation_code_learner_id_learner")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_activation_code")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_activation_code_code_hash")),
    )
    op.create_index(op.f("ix_activation_code_learner_id"), "activation_code", ["learner_id"])
    op.create_table(
        "sign_in_throttle",
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("locked_until", sa.BigInteger(), nullable=False),
        sa.Column("lockouts", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_sign_in_throttle")),
    )
    op.create_index(op.f("ix_sign_in_throttle_updated_at"), "sign_in_throttle", ["updated_at"])


def downgrade() -> None:
    op.drop_table("sign_in_throttle")
    op.drop_table("activation_code")
    op.drop_table("learner_registration")
    for table in ("learner", "staff_account"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("token_version")
