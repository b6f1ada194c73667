"""Length limits that SQLite hides and PostgreSQL enforces (issue 11.2): log-like columns are clipped when
written, a staff member may hold every role, and request strings are bounded by the columns they reach."""

from __future__ import annotations

import re

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
                    json={"code": "C77", "name": "中心", "kind": "centre"})
    assert r.status_code == 201, r.text
    r = client.post("/api/v1/admin/organisations", headers=headers,
                    json={"code": "B77", "name": "分中心", "kind": "branch", "parent_code": "C77"})
    assert r.status_code == 201, r.text
    assert client.get("/api/v1/audit", headers=headers).status_code == 200
    with session_scope(ctx.engine) as s:
        entry = s.exec(select(AuditEntry).where(AuditEntry.action == "organisation.create")).first()
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


# Request strings without a maxLength that share a name with a column: each is checked against a fixed list of
# values or only looked up (never written as given), so no length can reach the column.
_VALIDATED_ELSEWHERE = {
    "id_type",  # one of node.security.idnumbers.ID_TYPES
    "kind",  # one of the organisation kinds
    "institution_type",  # one of the institution types
    "format",  # one of the import formats
    "hash",  # looked up: a membership proposal's hash
    "organisation_code", "parent_code",  # looked up
    "username", "password",  # sign-in form: looked up / verified, never stored as given
}


def test_request_strings_fit_the_columns_they_share_a_name_with(app) -> None:
    """Every string property of a request body (and form) is bounded by a maxLength no longer than the longest
    column of the same name (SQLite would store a longer one; PostgreSQL refuses it: a 500, or an application
    stuck in review). Names are the link between schema and column; a new field with a column's name is
    checked automatically."""
    from node.models import metadata
    from tests.node.test_edge import _request_schemas

    columns: dict[str, int] = {}
    for table in metadata.sorted_tables:
        for column in table.columns:
            type_ = column.type.impl if isinstance(column.type, sa.types.TypeDecorator) else column.type
            if isinstance(type_, sa.String) and type_.length:
                columns[column.name] = max(columns.get(column.name, 0), type_.length)
    problems, checked = [], 0
    for where, node in _request_schemas(app.openapi()):
        if " body(" not in where or node.get("type") != "string" or "enum" in node or "const" in node:
            continue
        name = where.rsplit(".", 1)[-1].rstrip("[]")
        if name not in columns or name in _VALIDATED_ELSEWHERE:
            continue
        checked += 1
        if node.get("maxLength", 10**9) > columns[name]:
            problems.append(f"{where}: maxLength {node.get('maxLength')} > column {columns[name]}")
    assert checked > 20
    assert problems == []


# Request integers named like a 32-bit column that are bound to a BIGINT one: the ledger's sizes
# (ledger_head.size) and membership versions (membership_version.version).
_BIGINT_BOUND = {"GET /api/v1/ledger/proof/inclusion query:size",
                 "GET /.well-known/credit-node/membership/{version} path:version"}


def test_request_integers_fit_the_columns_they_share_a_name_with(app) -> None:
    """An integer bound to an INTEGER column (versions) must stay within 32 bits: PostgreSQL refuses a larger
    parameter there with a DataError (a 500; SQLite has no such limit)."""
    from node.models import metadata
    from tests.node.test_edge import _request_schemas

    narrow = {column.name for table in metadata.sorted_tables for column in table.columns
              if isinstance(column.type, sa.Integer) and not isinstance(column.type, sa.BigInteger)
              and not column.primary_key}
    problems = []
    for where, node in _request_schemas(app.openapi()):
        name = re.split(r"[.:]", where)[-1].rstrip("[]")
        if node.get("type") == "integer" and name in narrow and where not in _BIGINT_BOUND \
                and node.get("maximum", 2**64) > 2**31 - 1:
            problems.append(where)
    assert problems == []
