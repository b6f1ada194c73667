"""engagement (issue 16, items 5-8): incentive points ledger and its cursor, notices, their delivery queue and
preferences, correction requests, counselling consents and sessions (node/models/engage.py, docs/engage.md)

Revision ID: 0024
Revises: 0021
Create Date: 2026-12-03 12:13:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from node.models.types import BigId

revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('points_cursor',
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_points_cursor'))
    )
    op.create_table('counselling_consent',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('learner_id', BigId, nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('used_by', BigId, nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['learner_id'], ['learner.id'], name=op.f('fk_counselling_consent_learner_id_learner')),
    sa.ForeignKeyConstraint(['used_by'], ['staff_account.id'], name=op.f('fk_counselling_consent_used_by_staff_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_counselling_consent')),
    sa.UniqueConstraint('code_hash', name=op.f('uq_counselling_consent_code_hash'))
    )
    with op.batch_alter_table('counselling_consent', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_counselling_consent_learner_id'), ['learner_id'], unique=False)

    op.create_table('notice',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('learner_id', BigId, nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('link', sa.String(length=200), nullable=True),
    sa.Column('dedupe_key', sa.String(length=120), nullable=True),
    sa.Column('read_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['learner_id'], ['learner.id'], name=op.f('fk_notice_learner_id_learner')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notice')),
    sa.UniqueConstraint('dedupe_key', name=op.f('uq_notice_dedupe_key'))
    )
    with op.batch_alter_table('notice', schema=None) as batch_op:
        batch_op.create_index('ix_notice_learner_id_id', ['learner_id', 'id'], unique=False)

    op.create_table('notice_preference',
    sa.Column('learner_id', BigId, autoincrement=False, nullable=False),
    sa.Column('muted_kinds', sa.JSON(), nullable=False),
    sa.Column('email_kinds', sa.JSON(), nullable=False),
    sa.Column('sms_kinds', sa.JSON(), nullable=False),
    sa.Column('email_cipher', sa.LargeBinary(), nullable=True),
    sa.Column('phone_cipher', sa.LargeBinary(), nullable=True),
    sa.Column('key_id', sa.String(length=16), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['learner_id'], ['learner.id'], name=op.f('fk_notice_preference_learner_id_learner')),
    sa.PrimaryKeyConstraint('learner_id', name=op.f('pk_notice_preference'))
    )
    op.create_table('points_entry',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('learner_id', BigId, nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('rule_id', sa.String(length=64), nullable=False),
    sa.Column('source_seq', sa.BigInteger(), nullable=True),
    sa.Column('achievement_id', sa.BigInteger(), nullable=True),
    sa.Column('note', sa.String(length=200), nullable=False),
    sa.Column('expires_on', sa.Date(), nullable=True),
    sa.Column('actor', sa.String(length=100), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['learner_id'], ['learner.id'], name=op.f('fk_points_entry_learner_id_learner')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_points_entry')),
    sa.UniqueConstraint('learner_id', 'source_seq', 'rule_id', name=op.f('uq_points_entry_learner_id_source_seq_rule_id'))
    )
    with op.batch_alter_table('points_entry', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_points_entry_learner_id'), ['learner_id'], unique=False)

    op.create_table('correction_request',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('learner_id', BigId, nullable=False),
    sa.Column('achievement_id', BigId, nullable=False),
    sa.Column('message', sa.String(length=1000), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('handled_by', BigId, nullable=True),
    sa.Column('answer', sa.String(length=1000), nullable=True),
    sa.Column('ledger_seq', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('handled_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['achievement_id'], ['achievement.id'], name=op.f('fk_correction_request_achievement_id_achievement')),
    sa.ForeignKeyConstraint(['handled_by'], ['staff_account.id'], name=op.f('fk_correction_request_handled_by_staff_account')),
    sa.ForeignKeyConstraint(['learner_id'], ['learner.id'], name=op.f('fk_correction_request_learner_id_learner')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_correction_request'))
    )
    with op.batch_alter_table('correction_request', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_correction_request_learner_id'), ['learner_id'], unique=False)
        batch_op.create_index('ix_correction_request_state_id', ['state', 'id'], unique=False)

    op.create_table('counselling_session',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('learner_id', BigId, nullable=False),
    sa.Column('consent_id', BigId, nullable=False),
    sa.Column('staff_id', BigId, nullable=False),
    sa.Column('organisation_id', BigId, nullable=True),
    sa.Column('programme_code', sa.String(length=64), nullable=False),
    sa.Column('on_date', sa.Date(), nullable=False),
    sa.Column('result', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['consent_id'], ['counselling_consent.id'], name=op.f('fk_counselling_session_consent_id_counselling_consent')),
    sa.ForeignKeyConstraint(['learner_id'], ['learner.id'], name=op.f('fk_counselling_session_learner_id_learner')),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisation.id'], name=op.f('fk_counselling_session_organisation_id_organisation')),
    sa.ForeignKeyConstraint(['staff_id'], ['staff_account.id'], name=op.f('fk_counselling_session_staff_id_staff_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_counselling_session'))
    )
    with op.batch_alter_table('counselling_session', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_counselling_session_learner_id'), ['learner_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_counselling_session_staff_id'), ['staff_id'], unique=False)

    op.create_table('notice_delivery',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('notice_id', BigId, nullable=False),
    sa.Column('learner_id', BigId, nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('claimed_by', sa.String(length=64), nullable=True),
    sa.Column('last_error', sa.String(length=300), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['learner_id'], ['learner.id'], name=op.f('fk_notice_delivery_learner_id_learner')),
    sa.ForeignKeyConstraint(['notice_id'], ['notice.id'], name=op.f('fk_notice_delivery_notice_id_notice')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notice_delivery')),
    sa.UniqueConstraint('notice_id', 'channel', name=op.f('uq_notice_delivery_notice_id_channel'))
    )
    with op.batch_alter_table('notice_delivery', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notice_delivery_learner_id'), ['learner_id'], unique=False)
        batch_op.create_index('ix_notice_delivery_state_next_attempt_at', ['state', 'next_attempt_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('notice_delivery', schema=None) as batch_op:
        batch_op.drop_index('ix_notice_delivery_state_next_attempt_at')
        batch_op.drop_index(batch_op.f('ix_notice_delivery_learner_id'))

    op.drop_table('notice_delivery')
    with op.batch_alter_table('counselling_session', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_counselling_session_staff_id'))
        batch_op.drop_index(batch_op.f('ix_counselling_session_learner_id'))

    op.drop_table('counselling_session')
    with op.batch_alter_table('correction_request', schema=None) as batch_op:
        batch_op.drop_index('ix_correction_request_state_id')
        batch_op.drop_index(batch_op.f('ix_correction_request_learner_id'))

    op.drop_table('correction_request')
    with op.batch_alter_table('points_entry', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_points_entry_learner_id'))

    op.drop_table('points_entry')
    op.drop_table('notice_preference')
    with op.batch_alter_table('notice', schema=None) as batch_op:
        batch_op.drop_index('ix_notice_learner_id_id')

    op.drop_table('notice')
    with op.batch_alter_table('counselling_consent', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_counselling_consent_learner_id'))

    op.drop_table('counselling_consent')
    op.drop_table('points_cursor')
