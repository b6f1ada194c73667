"""Indexes for Shanghai's size (docs/scaling.md): each review queue and audit filter reads a page in id order
straight from an index (keyset paging), however large its table.

- deposit_application, conversion_request: (state, id) replaces (state);
- transfer, transfer_item: (state, id) (their queues had no index: a scan of the table);
- audit_log: (action, id) replaces (action); (target_type, target_id, id), (actor_id, id), (actor_name, id).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-03 00:20:00
"""

from __future__ import annotations

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

_NEW = (
    ("ix_deposit_application_state_id", "deposit_application", ["state", "id"]),
    ("ix_conversion_request_state_id", "conversion_request", ["state", "id"]),
    ("ix_transfer_state_id", "transfer", ["state", "id"]),
    ("ix_transfer_item_state_id", "transfer_item", ["state", "id"]),
    ("ix_audit_log_action_id", "audit_log", ["action", "id"]),
    ("ix_audit_log_target_type_target_id_id", "audit_log", ["target_type", "target_id", "id"]),
    ("ix_audit_log_actor_id_id", "audit_log", ["actor_id", "id"]),
    ("ix_audit_log_actor_name_id", "audit_log", ["actor_name", "id"]),
)
_REPLACED = (
    ("ix_deposit_application_state", "deposit_application", ["state"]),
    ("ix_conversion_request_state", "conversion_request", ["state"]),
    ("ix_audit_log_action", "audit_log", ["action"]),
)


def upgrade() -> None:
    for name, table, columns in _NEW:
        op.create_index(name, table, columns)
    for name, table, _columns in _REPLACED:
        op.drop_index(name, table_name=table)


def downgrade() -> None:
    for name, table, columns in _REPLACED:
        op.create_index(name, table, columns)
    for name, table, _columns in _NEW:
        op.drop_index(name, table_name=table)
