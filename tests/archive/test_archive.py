"""The archive: grouping as the Shanghai platform does, exact totals derived by query, access, masking."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa

from node.db import session_scope
from node.models import Achievement
from tests.deposits.helpers import ok, refused, register_learner


def _add(engine, learner_id: int, type_: str, *, credits: str | None = None, hours: str | None = None,
         status: str = "deposited", title: str = "t", earned: str = "2024-01-01", level: str | None = None) -> int:
    with session_scope(engine) as s:
        a = Achievement(learner_id=learner_id, type=type_, issuer_code="10280", issuer_name="上海大学", title=title,
                        credits=Decimal(credits) if credits else None, hours=Decimal(hours) if hours else None,
                        source="bulk", status=status, earned_on=dt.date.fromisoformat(earned), level=level)
        s.add(a)
        s.flush()
        return a.id


def _group(archive: dict, key: str) -> dict:
    return next(g for g in archive["groups"] if g["key"] == key)


def test_groups_and_exact_totals(client, engine) -> None:
    learner, other = register_learner(client, "501"), register_learner(client, "502")
    _add(engine, learner.id, "degree_course", credits="2.5", title="高等数学", earned="2023-06-30")
    _add(engine, learner.id, "self_study_course", credits="0.5", title="英语", earned="2024-01-10")
    _add(engine, learner.id, "vocational_qualification", credits="4", level="四级", title="电工")
    _add(engine, learner.id, "skill_level", level="三级", title="育婴员")
    _add(engine, learner.id, "training", hours="16.5", title="消防培训")
    _add(engine, learner.id, "training", hours="8.25", credits="0.125", title="急救培训")
    _add(engine, learner.id, "community", hours="12", title="老年大学书法")
    _add(engine, learner.id, "informal", title="志愿服务")
    _add(engine, learner.id, "degree_course", credits="100", status="revoked", title="已撤销")
    _add(engine, other.id, "degree_course", credits="7", title="别人的")
    archive = ok(client.get("/api/v1/me/archive", headers=learner.headers))
    assert [g["key"] for g in archive["groups"]] == ["degree", "certificate", "training", "other"]
    assert [g["name_zh"] for g in archive["groups"]] == ["学历教育", "证书", "培训", "其他"]
    degree = _group(archive, "degree")
    assert degree["totals"] == {"count": 2, "credits": "3", "hours": "0"}
    assert Decimal(degree["totals"]["credits"]) == Decimal("2.5") + Decimal("0.5")
    assert [i["title"] for i in degree["items"]] == ["英语", "高等数学"]  # newest first
    assert degree["items"][0]["credits"] == "0.5" and isinstance(degree["items"][0]["credits"], str)
    assert _group(archive, "certificate")["totals"] == {"count": 2, "credits": "4", "hours": "0"}
    assert _group(archive, "training")["totals"] == {"count": 2, "credits": "0.125", "hours": "24.75"}
    assert _group(archive, "other")["totals"] == {"count": 2, "credits": "0", "hours": "12"}
    assert archive["totals"] == {"count": 8, "credits": "7.125", "hours": "36.75"}
    assert all(i["status"] == "deposited" for g in archive["groups"] for i in g["items"])
    assert learner.id_number not in client.get("/api/v1/me/archive", headers=learner.headers).text
    assert archive["learner"]["id_number_masked"].count("*") == 8


def test_empty_archive(client) -> None:
    learner = register_learner(client, "503")
    archive = ok(client.get("/api/v1/me/archive", headers=learner.headers))
    assert all(g["items"] == [] and g["totals"] == {"count": 0, "credits": "0", "hours": "0"}
               for g in archive["groups"])


def test_staff_read_is_audited_and_learners_only_read_their_own(client, staff_headers, engine) -> None:
    alice, bob = register_learner(client, "511"), register_learner(client, "512")
    _add(engine, alice.id, "degree_course", credits="1.5")
    for role in ("outlet_staff", "branch_reviewer", "centre_reviewer"):
        r = client.get(f"/api/v1/learners/{alice.id}/archive", headers=staff_headers(role))
        assert r.status_code == 200 and alice.id_number not in r.text
        assert r.json()["totals"]["credits"] == "1.5"
    refused(client.get(f"/api/v1/learners/{alice.id}/archive", headers=staff_headers("auditor")), 403, "forbidden")
    refused(client.get(f"/api/v1/learners/{alice.id}/archive", headers=bob.headers), 403, "forbidden")
    refused(client.get("/api/v1/learners/999999/archive", headers=staff_headers("centre_reviewer")), 404,
            "not_found")
    assert ok(client.get("/api/v1/me/archive", headers=bob.headers))["totals"]["count"] == 0
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT outcome, target_id FROM audit_log WHERE action = 'archive.read'")).all()
    assert sorted(rows) == sorted([("ok", str(alice.id))] * 3 + [("denied", "999999")])


def test_archive_queries_do_not_grow_with_the_number_of_items(client, engine) -> None:
    learner = register_learner(client, "521")
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    def selects_for_archive() -> int:
        statements.clear()
        sa.event.listen(engine, "before_cursor_execute", count)
        try:
            ok(client.get("/api/v1/me/archive", headers=learner.headers))
        finally:
            sa.event.remove(engine, "before_cursor_execute", count)
        return len(statements)

    _add(engine, learner.id, "degree_course", credits="1")
    few = selects_for_archive()
    for i in range(20):
        _add(engine, learner.id, ("degree_course", "training", "community", "skill_level")[i % 4], credits="1",
             hours="2", level="三级")
    assert selects_for_archive() == few <= 4  # learner, items, totals (+ nothing per item)


def test_the_routes_bytes_equal_the_models_json(client, engine, ctx) -> None:
    """The routes write the rows straight to JSON (learner_archive_json); the bytes are those of the
    ArchivePublic model that `learner_archive` builds (what `response_model` documents and the portal shows)."""
    from node.archive.repository import ITEM_COLUMNS
    from node.archive.service import _ITEM_FIELDS, archive_json, learner_archive, learner_archive_json

    assert tuple(c.key for c in ITEM_COLUMNS) == _ITEM_FIELDS
    learner, empty = register_learner(client, "511"), register_learner(client, "512")
    _add(engine, learner.id, "degree_course", credits="2.500", hours="0.001", title='引号 " 与 \\ 反斜杠',
         earned="2023-06-30")
    _add(engine, learner.id, "vocational_qualification", credits="4", level="四级", title="电工")
    _add(engine, learner.id, "training", hours="99999.999", title="长")
    _add(engine, learner.id, "informal", title="无学分")
    _add(engine, learner.id, "community", credits="0", title="零", status="revoked")
    with session_scope(engine) as s:
        for who in (learner.id, empty.id):
            assert learner_archive_json(s, ctx, who) == archive_json(learner_archive(s, ctx, who))
    body = client.get("/api/v1/me/archive", headers=learner.headers).content
    with session_scope(engine) as s:
        assert body == archive_json(learner_archive(s, ctx, learner.id))
