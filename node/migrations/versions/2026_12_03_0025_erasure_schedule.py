"""issue 16's open points: the centre's erasure of a person (erasure_request, learner.erased_at) and the
scheduled exemption report's period (dc_exemption_report.period, once per project and period); docs/privacy.md,
docs/projects.md

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-03 16:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from node.models.types import BigId

revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('erasure_request',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('learner_id', BigId, nullable=False),
    sa.Column('basis', sa.String(length=30), nullable=False),
    sa.Column('legal_reference', sa.String(length=300), nullable=True),
    sa.Column('reason', sa.String(length=1000), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('requested_by', BigId, nullable=False),
    sa.Column('confirmed_by', BigId, nullable=True),
    sa.Column('result', sa.JSON(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['learner_id'], ['learner.id'], name=op.f('fk_erasure_request_learner_id_learner')),
    sa.ForeignKeyConstraint(['requested_by'], ['staff_account.id'],
                            name=op.f('fk_erasure_request_requested_by_staff_account')),
    sa.ForeignKeyConstraint(['confirmed_by'], ['staff_account.id'],
                            name=op.f('fk_erasure_request_confirmed_by_staff_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_erasure_request'))
    )
    with op.batch_alter_table('erasure_request', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_erasure_request_learner_id'), ['learner_id'], unique=False)
    with op.batch_alter_table('learner', schema=None) as batch_op:
        batch_op.add_column(sa.Column('erased_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('dc_exemption_report', schema=None) as batch_op:
        batch_op.add_column(sa.Column('period', sa.String(length=16), nullable=True))
        batch_op.create_unique_constraint('uq_dc_exemption_report_project_id_period', ['project_id', 'period'])


def downgrade() -> None:
    with op.batch_alter_table('dc_exemption_report', schema=None) as batch_op:
        batch_op.drop_constraint('uq_dc_exemption_report_project_id_period', type_='unique')
        batch_op.drop_column('period')
    with op.batch_alter_table('learner', schema=None) as batch_op:
        batch_op.drop_column('erased_at')
    with op.batch_alter_table('erasure_request', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_erasure_request_learner_id'))
    op.drop_table('erasure_request')
