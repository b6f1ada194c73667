"""standards: catalogue, rule lifecycle, conversion requests, exemption statements

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
