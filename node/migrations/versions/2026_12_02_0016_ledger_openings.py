"""ledger_event.salt and .opening: the private opening of a v2 leaf's commitment (docs/ledger.md)

Version-2 leaves of events about a person publish a salted commitment instead of the learner's hash and the
event's data; the node keeps the salt and the committed body here. Existing (version 1) rows keep NULL.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 00:16:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ledger_event") as batch:
        batch.add_column(sa.Column("salt", sa.LargeBinary(length=16), nullable=True))
        batch.add_column(sa.Column("opening", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ledger_event") as batch:
        batch.drop_column("opening")
        batch.drop_column("salt")
