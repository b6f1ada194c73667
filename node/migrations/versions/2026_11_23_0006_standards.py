"""standards: catalogue, rule lifecycle, conversion requests, exemption statements

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from node.models.types import ExactDecimal

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "catalogue_entry",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("effective_to", sa.Date(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalogue_entry")),
        sa.UniqueConstraint("kind", "code", "version", name=op.f("uq_catalogue_entry_kind_code_version")),
    )
    op.create_index(op.f("ix_catalogue_entry_code"), "catalogue_entry", ["code"])
    op.create_table(
        "standard_rule",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("rule_id", sa.String(length=80), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("effective_to", sa.Date(), nullable=True),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("approved_by", sa.String(length=64), nullable=True),
        sa.Column("approved_at", _TS, nullable=True),
        sa.Column("retired_by", sa.String(length=64), nullable=True),
        sa.Column("retired_at", _TS, nullable=True),
        sa.Column("decision_reason", sa.String(length=1000), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_standard_rule")),
        sa.UniqueConstraint("rule_id", "version", name=op.f("uq_standard_rule_rule_id_version")),
    )
    op.create_index(op.f("ix_standard_rule_rule_id"), "standard_rule", ["rule_id"])
    op.create_index(op.f("ix_standard_rule_status"), "standard_rule", ["status"])
    op.create_table(
        "conversion_request",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("learner_id", _ID, nullable=False),
        sa.Column("programme_code", sa.String(length=64), nullable=False),
        sa.Column("on_date", sa.Date(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("confirmed_by", _ID, nullable=True),
        sa.Column("confirmed_at", _TS, nullable=True),
        sa.Column("reviewed_by", _ID, nullable=True),
        sa.Column("reviewed_at", _TS, nullable=True),
        sa.Column("appeal_reason", sa.String(length=1000), nullable=True),
        sa.Column("appealed_at", _TS, nullable=True),
        sa.Column("appeal_reviewed_by", _ID, nullable=True),
        sa.Column("evaluation", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["learner_id"], ["learner.id"], name=op.f("fk_conversion_request_learner_id_learner")),
        sa.ForeignKeyConstraint(["confirmed_by"], ["staff_account.id"],
                                name=op.f("fk_conversion_request_confirmed_by_staff_account")),
        sa.ForeignKeyConstraint(["reviewed_by"], ["staff_account.id"],
                                name=op.f("fk_conversion_request_reviewed_by_staff_account")),
        sa.ForeignKeyConstraint(["appeal_reviewed_by"], ["staff_account.id"],
                                name=op.f("fk_conversion_request_appeal_reviewed_by_staff_account")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversion_request")),
    )
    op.create_index(op.f("ix_conversion_request_learner_id"), "conversion_request", ["learner_id"])
    op.create_index(op.f("ix_conversion_request_state"), "conversion_request", ["state"])
    op.create_table(
        "conversion_item",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("request_id", _ID, nullable=False),
        sa.Column("target_key", sa.String(length=200), nullable=False),
        sa.Column("target", sa.JSON(), nullable=False),
        sa.Column("rule_id", sa.String(length=80), nullable=False),
        sa.Column("rule_version", sa.Integer(), nullable=False),
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.Column("proposed_credits", ExactDecimal(), nullable=False),
        sa.Column("credits", ExactDecimal(), nullable=False),
        sa.Column("recorded_grade", sa.String(length=20), nullable=False),
        sa.Column("explanation", sa.JSON(), nullable=False),
        sa.Column("explanation_zh", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=1000), nullable=True),
        sa.Column("decided_stage", sa.String(length=10), nullable=True),
        sa.Column("ledger_seq", sa.BigInteger(), nullable=True),
        sa.Column("achievement_id", _ID, nullable=True),
        sa.ForeignKeyConstraint(["request_id"], ["conversion_request.id"],
                                name=op.f("fk_conversion_item_request_id_conversion_request")),
        sa.ForeignKeyConstraint(["achievement_id"], ["achievement.id"],
                                name=op.f("fk_conversion_item_achievement_id_achievement")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversion_item")),
    )
    op.create_index(op.f("ix_conversion_item_request_id"), "conversion_item", ["request_id"])
    op.create_table(
        "conversion_usage",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("learner_id", _ID, nullable=False),
        sa.Column("programme_code", sa.String(length=64), nullable=False),
        sa.Column("target_key", sa.String(length=200), nullable=False),
        sa.Column("achievement_id", _ID, nullable=False),
        sa.Column("item_id", _ID, nullable=False),
        sa.Column("credits", ExactDecimal(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["learner_id"], ["learner.id"], name=op.f("fk_conversion_usage_learner_id_learner")),
        sa.ForeignKeyConstraint(["achievement_id"], ["achievement.id"],
                                name=op.f("fk_conversion_usage_achievement_id_achievement")),
        sa.ForeignKeyConstraint(["item_id"], ["conversion_item.id"],
                                name=op.f("fk_conversion_usage_item_id_conversion_item")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversion_usage")),
        sa.UniqueConstraint("learner_id", "target_key", "achievement_id",
                            name=op.f("uq_conversion_usage_learner_id_target_key_achievement_id")),
    )
    op.create_index(op.f("ix_conversion_usage_learner_id"), "conversion_usage", ["learner_id"])
    op.create_table(
        "exemption_statement",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("item_id", _ID, nullable=False),
        sa.Column("learner_id", _ID, nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["conversion_item.id"],
                                name=op.f("fk_exemption_statement_item_id_conversion_item")),
        sa.ForeignKeyConstraint(["learner_id"], ["learner.id"],
                                name=op.f("fk_exemption_statement_learner_id_learner")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exemption_statement")),
        sa.UniqueConstraint("item_id", name=op.f("uq_exemption_statement_item_id")),
    )
    op.create_index(op.f("ix_exemption_statement_learner_id"), "exemption_statement", ["learner_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_exemption_statement_learner_id"), table_name="exemption_statement")
    op.drop_table("exemption_statement")
    op.drop_index(op.f("ix_conversion_usage_learner_id"), table_name="conversion_usage")
    op.drop_table("conversion_usage")
    op.drop_index(op.f("ix_conversion_item_request_id"), table_name="conversion_item")
    op.drop_table("conversion_item")
    op.drop_index(op.f("ix_conversion_request_state"), table_name="conversion_request")
    op.drop_index(op.f("ix_conversion_request_learner_id"), table_name="conversion_request")
    op.drop_table("conversion_request")
    op.drop_index(op.f("ix_standard_rule_status"), table_name="standard_rule")
    op.drop_index(op.f("ix_standard_rule_rule_id"), table_name="standard_rule")
    op.drop_table("standard_rule")
    op.drop_index(op.f("ix_catalogue_entry_code"), table_name="catalogue_entry")
    op.drop_table("catalogue_entry")
