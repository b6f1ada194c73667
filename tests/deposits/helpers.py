"""Helpers shared by the deposit, archive and audit tests: learners, claims, the workflow's steps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.conftest import valid_id

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(17)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(20)


@dataclass
class LearnerUser:
    id: int
    account_no: str
    id_number: str
    headers: dict[str, str]


def register_learner(client: Any, serial: str = "101", name: str = "张三") -> LearnerUser:
    """A learner whose account an outlet opened (ID card checked, password typed at the desk), signed in with
    the account number. (Online registration opens no account until identity is verified: docs/accounts.md.)"""
    from node.db import session_scope
    from node.learners.service import open_account

    ctx = client.app.state.ctx
    number = valid_id(serial=serial)
    with session_scope(ctx.engine) as s:
        learner, created = open_account(s, ctx, id_type="resident_id", id_number=number, name=name,
                                        password="learner-pass-1")
        assert created, "this serial's learner exists already"
        account_no, learner_id = learner.account_no, learner.id
    token = client.post("/api/v1/auth/token", data={"username": account_no, "password": "learner-pass-1"})
    assert token.status_code == 200, token.text
    return LearnerUser(learner_id, account_no, number, {"Authorization": f"Bearer {token.json()['access_token']}"})


def claim(**over: Any) -> dict[str, Any]:
    base = {
        "type": "degree_course", "issuer_code": "10280", "issuer_name": "上海大学", "code": "MATH101",
        "title": "高等数学", "credits": "2.5", "score": "85", "earned_on": "2024-01-15",
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def draft(client: Any, learner: LearnerUser, *, branch: str | None = None, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"achievement": claim(**over)}
    if branch is not None:
        body["branch_code"] = branch
    r = client.post("/api/v1/me/deposit-applications", json=body, headers=learner.headers)
    assert r.status_code == 201, r.text
    return r.json()


def upload(client: Any, app_id: int, headers: dict[str, str], *, content: bytes = PDF, name: str = "cert.pdf",
           content_type: str = "application/pdf", own: bool = True) -> Any:
    prefix = "/api/v1/me/deposit-applications" if own else "/api/v1/deposit-applications"
    return client.post(f"{prefix}/{app_id}/evidence", files={"file": (name, content, content_type)},
                       headers=headers)


def submitted(client: Any, learner: LearnerUser, *, content: bytes = PDF, branch: str | None = None,
              **over: Any) -> dict[str, Any]:
    """A draft with one evidence file (routed to `branch` if given), submitted: state pending_first."""
    app = draft(client, learner, branch=branch, **over)
    r = upload(client, app["id"], learner.headers, content=content)
    assert r.status_code == 201, r.text
    fresh = client.get(f"/api/v1/me/deposit-applications/{app['id']}", headers=learner.headers).json()
    r = client.post(f"/api/v1/me/deposit-applications/{app['id']}/submit", json={"version": fresh["version"]},
                    headers=learner.headers)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "pending_first"
    return r.json()


def decide(client: Any, headers: dict[str, str], app: dict[str, Any], decision: str, reason: str | None = None,
           version: int | None = None) -> Any:
    body: dict[str, Any] = {"decision": decision, "version": app["version"] if version is None else version}
    if reason is not None:
        body["reason"] = reason
    return client.post(f"/api/v1/deposit-applications/{app['id']}/decision", json=body, headers=headers)


def ok(r: Any, status: int = 200) -> dict[str, Any]:
    assert r.status_code == status, r.text
    return r.json()


def refused(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == code, body
    assert set(body) >= {"code", "message"}
    return body
