"""audit_log.role as TEXT: a staff member holding several roles (comma-joined) overflowed VARCHAR(40) on
PostgreSQL at sign-in and on every audited action (issue 11.2). The other log-like columns keep their length;
the model clips what is written to them (node.models.types.LogString).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 00:12:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.alter_column("role", existing_type=sa.String(length=40), type_=sa.Text(), existing_nullable=True)


def downgrade() -> None:
    # Entries are never rewritten: a role set longer than 40 characters keeps only its first 40 on the way down.
    op.execute("UPDATE audit_log SET role = substr(role, 1, 40) WHERE length(role) > 40")
    with op.batch_alter_table("audit_log") as batch:
        batch.alter_column("role", existing_type=sa.Text(), type_=sa.String(length=40), existing_nullable=True)
