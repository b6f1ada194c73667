"""Length limits that SQLite hides and PostgreSQL enforces (issue 11.2): log-like columns are clipped when
written, a staff member may hold every role, and request strings are bounded by the columns they reach."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import select

from node.audit.service import record
from node.db import session_scope
from node.deps import Principal
from node.models import AuditEntry
from node.roles import ALL_STAFF_ROLES


def test_staff_holding_every_role_signs_in_and_acts(client, staff_headers, ctx) -> None:
    roles = sorted(ALL_STAFF_ROLES)
    assert len(",".join(roles)) > 40  # what overflowed audit_log.role (VARCHAR(40)) on PostgreSQL
    headers = staff_headers(*roles)
    r = client.post("/api/v1/admin/organisations", headers=headers,
                    json={"code": "B77", "name": "分中心", "kind": "branch"})
    assert r.status_code == 201, r.text
    assert client.get("/api/v1/audit", headers=headers).status_code == 200
    with session_scope(ctx.engine) as s:
        entry = s.exec(select(AuditEntry).where(AuditEntry.action == "organisation.create")).one()
        assert entry.role == ",".join(roles)


def test_log_like_columns_are_clipped_and_cleaned(ctx) -> None:
    actor = Principal("staff", 1, "名" * 300 + "\x00", ("node_admin",))
    with session_scope(ctx.engine) as s:
        entry = record(s, actor=actor, action="http.get /" + "x" * 500, target_type="t" * 100,
                       target_id="7\x00" + "9" * 200 + "\ud800", detail={"k": "v"})
        s.flush()
        entry_id = entry.id
    with session_scope(ctx.engine) as s:
        row = s.get(AuditEntry, entry_id)
        assert row.actor_name == "名" * 100
        assert row.action == ("http.get /" + "x" * 500)[:60]
        assert row.target_type == "t" * 40
        assert row.target_id.startswith("7\ufffd9") and len(row.target_id) == 64


def test_string_columns_match_their_declared_lengths(engine) -> None:
    """The migrated schema has the lengths the models declare (a model narrower than its column, or the
    reverse, would let SQLite accept what PostgreSQL refuses)."""
    from node.models import metadata

    inspected = sa.inspect(engine)
    for table in metadata.sorted_tables:
        columns = {c["name"]: c for c in inspected.get_columns(table.name)}
        for column in table.columns:
            type_ = column.type.impl if isinstance(column.type, sa.types.TypeDecorator) else column.type
            declared = type_.length if isinstance(type_, sa.String) else None
            if declared is None or engine.dialect.name == "sqlite":
                continue
            assert columns[column.name]["type"].length == declared, (table.name, column.name)
