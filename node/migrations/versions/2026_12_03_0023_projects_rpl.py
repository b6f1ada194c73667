"""双证融通 projects (application, expert panel, votes, exemption reports) and recognition of prior learning
(applications and their portfolio files); docs/projects.md

Revision ID: 0023
Revises: 0021
Create Date: 2026-12-03 00:23:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from node.models.types import BigId, ExactDecimal, UtcDateTime

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('dc_project',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('organisation_id', BigId, nullable=True),
    sa.Column('institution_code', sa.String(length=64), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('programme_code', sa.String(length=64), nullable=False),
    sa.Column('certificate_code', sa.String(length=64), nullable=False),
    sa.Column('certificate_level', sa.String(length=20), nullable=False),
    sa.Column('mode', sa.String(length=30), nullable=False),
    sa.Column('discipline', sa.String(length=100), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('proposed_rules', sa.JSON(), nullable=False),
    sa.Column('rule_refs', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('applied_by', sa.String(length=64), nullable=False),
    sa.Column('published_by', sa.String(length=64), nullable=True),
    sa.Column('published_at', UtcDateTime(), nullable=True),
    sa.Column('decision_reason', sa.String(length=1000), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', UtcDateTime(), nullable=False),
    sa.Column('updated_at', UtcDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisation.id'], name=op.f('fk_dc_project_organisation_id_organisation')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dc_project'))
    )
    with op.batch_alter_table('dc_project', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dc_project_organisation_id'), ['organisation_id'], unique=False)
        batch_op.create_index('ix_dc_project_state_id', ['state', 'id'], unique=False)

    op.create_table('dc_exemption_report',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('project_id', BigId, nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('document', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('ledger_seq', sa.BigInteger(), nullable=True),
    sa.Column('created_at', UtcDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['dc_project.id'], name=op.f('fk_dc_exemption_report_project_id_dc_project')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dc_exemption_report'))
    )
    with op.batch_alter_table('dc_exemption_report', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dc_exemption_report_project_id'), ['project_id'], unique=False)

    op.create_table('dc_project_evidence',
    sa.Column('project_id', BigId, nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['dc_project.id'], name=op.f('fk_dc_project_evidence_project_id_dc_project')),
    sa.ForeignKeyConstraint(['sha256'], ['evidence_file.sha256'], name=op.f('fk_dc_project_evidence_sha256_evidence_file')),
    sa.PrimaryKeyConstraint('project_id', 'sha256', name=op.f('pk_dc_project_evidence'))
    )
    op.create_table('dc_project_panel',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('project_id', BigId, nullable=False),
    sa.Column('staff_id', BigId, nullable=False),
    sa.Column('assigned_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', UtcDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['dc_project.id'], name=op.f('fk_dc_project_panel_project_id_dc_project')),
    sa.ForeignKeyConstraint(['staff_id'], ['staff_account.id'], name=op.f('fk_dc_project_panel_staff_id_staff_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dc_project_panel')),
    sa.UniqueConstraint('project_id', 'staff_id', name=op.f('uq_dc_project_panel_project_id_staff_id'))
    )
    with op.batch_alter_table('dc_project_panel', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dc_project_panel_project_id'), ['project_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_dc_project_panel_staff_id'), ['staff_id'], unique=False)

    op.create_table('dc_project_vote',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('project_id', BigId, nullable=False),
    sa.Column('staff_id', BigId, nullable=False),
    sa.Column('vote', sa.String(length=10), nullable=False),
    sa.Column('comment', sa.String(length=2000), nullable=False),
    sa.Column('created_at', UtcDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['dc_project.id'], name=op.f('fk_dc_project_vote_project_id_dc_project')),
    sa.ForeignKeyConstraint(['staff_id'], ['staff_account.id'], name=op.f('fk_dc_project_vote_staff_id_staff_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dc_project_vote')),
    sa.UniqueConstraint('project_id', 'staff_id', name=op.f('uq_dc_project_vote_project_id_staff_id'))
    )
    with op.batch_alter_table('dc_project_vote', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dc_project_vote_project_id'), ['project_id'], unique=False)

    op.create_table('rpl_application',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('learner_id', BigId, nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('employer', sa.String(length=200), nullable=True),
    sa.Column('hours', ExactDecimal(), nullable=True),
    sa.Column('started_on', sa.Date(), nullable=True),
    sa.Column('ended_on', sa.Date(), nullable=True),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('programme_code', sa.String(length=64), nullable=True),
    sa.Column('course_code', sa.String(length=64), nullable=True),
    sa.Column('assessor_id', BigId, nullable=True),
    sa.Column('assessed_at', UtcDateTime(), nullable=True),
    sa.Column('proposed_credits', ExactDecimal(), nullable=True),
    sa.Column('assessment', sa.String(length=2000), nullable=True),
    sa.Column('decided_by', BigId, nullable=True),
    sa.Column('decided_at', UtcDateTime(), nullable=True),
    sa.Column('decision_reason', sa.String(length=1000), nullable=True),
    sa.Column('achievement_id', BigId, nullable=True),
    sa.Column('ledger_seq', sa.BigInteger(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', UtcDateTime(), nullable=False),
    sa.Column('updated_at', UtcDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['achievement_id'], ['achievement.id'], name=op.f('fk_rpl_application_achievement_id_achievement')),
    sa.ForeignKeyConstraint(['assessor_id'], ['staff_account.id'], name=op.f('fk_rpl_application_assessor_id_staff_account')),
    sa.ForeignKeyConstraint(['decided_by'], ['staff_account.id'], name=op.f('fk_rpl_application_decided_by_staff_account')),
    sa.ForeignKeyConstraint(['learner_id'], ['learner.id'], name=op.f('fk_rpl_application_learner_id_learner')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rpl_application'))
    )
    with op.batch_alter_table('rpl_application', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rpl_application_learner_id'), ['learner_id'], unique=False)
        batch_op.create_index('ix_rpl_application_state_id', ['state', 'id'], unique=False)

    op.create_table('rpl_evidence',
    sa.Column('application_id', BigId, nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['application_id'], ['rpl_application.id'], name=op.f('fk_rpl_evidence_application_id_rpl_application')),
    sa.ForeignKeyConstraint(['sha256'], ['evidence_file.sha256'], name=op.f('fk_rpl_evidence_sha256_evidence_file')),
    sa.PrimaryKeyConstraint('application_id', 'sha256', name=op.f('pk_rpl_evidence'))
    )


def downgrade() -> None:
    op.drop_table('rpl_evidence')
    with op.batch_alter_table('rpl_application', schema=None) as batch_op:
        batch_op.drop_index('ix_rpl_application_state_id')
        batch_op.drop_index(batch_op.f('ix_rpl_application_learner_id'))

    op.drop_table('rpl_application')
    with op.batch_alter_table('dc_project_vote', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dc_project_vote_project_id'))

    op.drop_table('dc_project_vote')
    with op.batch_alter_table('dc_project_panel', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dc_project_panel_staff_id'))
        batch_op.drop_index(batch_op.f('ix_dc_project_panel_project_id'))

    op.drop_table('dc_project_panel')
    op.drop_table('dc_project_evidence')
    with op.batch_alter_table('dc_exemption_report', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dc_exemption_report_project_id'))

    op.drop_table('dc_exemption_report')
    with op.batch_alter_table('dc_project', schema=None) as batch_op:
        batch_op.drop_index('ix_dc_project_state_id')
        batch_op.drop_index(batch_op.f('ix_dc_project_organisation_id'))

    op.drop_table('dc_project')
