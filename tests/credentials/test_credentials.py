"""Signed achievement records, the did:web document, rotation, revocation, verification."""

from __future__ import annotations

import copy
import json

import pytest

from node.credentials.verify import verify_document
from node.db import session_scope
from node.identity.keyring import revoke_key, rotate_keyring


def _login(client, account_no: str) -> dict:
    r = client.post("/api/v1/auth/token", data={"username": account_no, "password": "learner-pass-1"})
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _account(ctx, learner_id: int) -> str:
    from node.models import Learner

    with session_scope(ctx.engine) as s:
        return s.get(Learner, learner_id).account_no


def test_did_document_is_served(client, ctx) -> None:
    doc = client.get("/.well-known/did.json").json()
    assert doc["id"] == ctx.identity.did and doc["id"].startswith("did:web:127.0.0.1%3A8101")
    vm = doc["verificationMethod"][0]
    assert vm["type"] == "Multikey" and vm["publicKeyMultibase"].startswith("z6Mk")
    assert vm["id"] in doc["assertionMethod"]


def test_credential_verifies_with_did_json_alone_and_fails_when_tampered(client, ctx, deposit) -> None:
    learner_id, achievement_id = deposit(title="大学英语", credits="2.5")
    h = _login(client, _account(ctx, learner_id))
    r = client.get(f"/api/v1/me/credentials/{achievement_id}", headers=h)
    assert r.status_code == 200, r.text
    cred = r.json()
    assert "AchievementCredential" in cred["type"]
    assert [p["cryptosuite"] for p in cred["proof"]] == ["eddsa-jcs-2022", "eddsa-rdfc-2022"]
    record = cred["credentialSubject"]["creditBank"]
    assert record["credits"] == "2.5" and cred["credentialSubject"]["id"].startswith("urn:uuid:")
    assert "310101" not in json.dumps(cred, ensure_ascii=False)  # no ID number anywhere
    did_doc = client.get("/.well-known/did.json").json()
    assert verify_document(cred, resolve_did={did_doc["id"]: did_doc}.get).valid
    tampered = copy.deepcopy(cred)
    tampered["credentialSubject"]["creditBank"]["credits"] = "3.5"
    report = verify_document(tampered, resolve_did={did_doc["id"]: did_doc}.get)
    assert not report.valid and any(c.check == "signature" and c.ok is False for c in report.checks)


def test_learner_cannot_export_someone_elses_record(client, ctx, deposit) -> None:
    a_learner, _ = deposit()
    _, other_achievement = deposit()
    h = _login(client, _account(ctx, a_learner))
    assert client.get(f"/api/v1/me/credentials/{other_achievement}", headers=h).status_code == 404


def test_transcript_is_a_signed_presentation(client, ctx, deposit) -> None:
    learner_id, _ = deposit(title="高等数学")
    deposit(title="线性代数", learner_id=learner_id)
    h = _login(client, _account(ctx, learner_id))
    vp = client.get("/api/v1/me/transcript", headers=h).json()
    assert vp["type"] == ["VerifiablePresentation", "CreditBankTranscript"] and len(vp["verifiableCredential"]) == 2
    verdict = client.post("/api/v1/verify", json=vp).json()
    assert verdict["valid"], verdict


def test_revocation_is_reviewed_and_shows_in_status_list(client, ctx, deposit, staff_headers) -> None:
    learner_id, achievement_id = deposit()
    maker, checker = staff_headers("centre_reviewer"), staff_headers("centre_reviewer")
    cred = _credential(client, ctx, learner_id, achievement_id)
    assert client.post("/api/v1/verify", json=cred).json()["valid"]
    req = client.post(f"/api/v1/achievements/{achievement_id}/revocations", json={"reason": "证书造假"}, headers=maker)
    assert req.status_code == 201
    own = client.post(f"/api/v1/revocations/{req.json()['id']}/decision", json={"approve": True}, headers=maker)
    assert own.status_code == 403 and own.json()["code"] == "self_review"
    ok = client.post(f"/api/v1/revocations/{req.json()['id']}/decision", json={"approve": True}, headers=checker)
    assert ok.status_code == 200 and ok.json()["state"] == "approved"
    verdict = client.post("/api/v1/verify", json=cred).json()
    assert not verdict["valid"]
    assert any(c["check"] == "status" and c["ok"] is False for c in verdict["checks"])
    again = client.post(f"/api/v1/revocations/{req.json()['id']}/decision", json={"approve": True}, headers=checker)
    assert again.status_code == 409


def _credential(client, ctx, learner_id: int, achievement_id: int) -> dict:
    return client.get(f"/api/v1/me/credentials/{achievement_id}", headers=_login(client, _account(ctx, learner_id))).json()


def test_a_record_at_a_framework_level_states_its_reference_level(client, ctx, deposit) -> None:
    """Shanghai's 专科/高职 level SH-3 is the shared R3: the credential says so (cb:referenceLevel), so a
    destination applies a reference-level mapping without a copy of Shanghai's framework."""
    learner_id, at_level = deposit(title="机械制图", level="SH-3")
    record = _credential(client, ctx, learner_id, at_level)["credentialSubject"]["creditBank"]
    assert (record["level"], record["referenceLevel"]) == ("SH-3", "R3")
    _, certificate = deposit(title="数控铣工", type="vocational_qualification", level="三级", learner_id=learner_id)
    record = _credential(client, ctx, learner_id, certificate)["credentialSubject"]["creditBank"]
    assert record["level"] == "三级" and "referenceLevel" not in record  # not a framework level


def test_rotation_keeps_old_signatures_valid_until_the_old_key_is_revoked(client, ctx, deposit) -> None:
    learner_id, achievement_id = deposit()
    old_cred = _credential(client, ctx, learner_id, achievement_id)
    old_key = ctx.identity.ring.current
    rotate_keyring(ctx.settings)
    ctx.reload_identity()
    doc = client.get("/.well-known/did.json").json()
    assert len(doc["verificationMethod"]) == 2
    assert any(vm.get("expires") for vm in doc["verificationMethod"])
    report = verify_document(old_cred, resolve_did={doc["id"]: doc}.get)
    assert report.valid and "rotated" in report.checks[0].reason
    new_cred = _credential(client, ctx, learner_id, achievement_id)
    assert all(p["verificationMethod"].endswith("#key-2") for p in new_cred["proof"])
    revoke_key(ctx.settings, old_key)
    ctx.reload_identity()
    doc = client.get("/.well-known/did.json").json()
    report = verify_document(old_cred, resolve_did={doc["id"]: doc}.get)
    assert not report.valid and "revoked" in report.checks[0].reason
    assert verify_document(new_cred, resolve_did={doc["id"]: doc}.get).valid


def test_verify_endpoint_reports_inclusion_and_rate_limits(client, ctx, deposit) -> None:
    learner_id, achievement_id = deposit()
    cred = _credential(client, ctx, learner_id, achievement_id)
    verdict = client.post("/api/v1/verify", json=cred).json()
    assert verdict["valid"]
    checks = {c["check"]: c for c in verdict["checks"]}
    assert checks["inclusion"]["ok"] is True and checks["status"]["ok"] is True
    ctx.settings.security.verify_rate_limit_per_minute = 1
    codes = {client.post("/api/v1/verify", json=cred).status_code for _ in range(3)}
    assert 429 in codes


@pytest.mark.parametrize("junk", [{}, {"type": ["VerifiableCredential"]}, {"type": "Other"}])
def test_verify_endpoint_explains_bad_input(client, junk) -> None:
    verdict = client.post("/api/v1/verify", json=junk).json()
    assert verdict["valid"] is False and verdict["checks"]


def test_cli_verifies_offline_with_the_did_document_and_catches_a_one_byte_change(client, ctx, deposit, tmp_path) -> None:
    from typer.testing import CliRunner

    from node.cli import app as cli_app

    learner_id, achievement_id = deposit(title="高等数学", credits="4")
    cred = client.get(f"/api/v1/me/credentials/{achievement_id}", headers=_login(client, _account(ctx, learner_id)))
    did = tmp_path / "did.json"
    did.write_text(client.get("/.well-known/did.json").text, encoding="utf-8")
    good = tmp_path / "credential.json"
    good.write_bytes(cred.content)
    result = CliRunner().invoke(cli_app, ["verify", str(good), "--did-document", str(did)])
    assert result.exit_code == 0 and "VALID" in result.output, result.output
    bad = tmp_path / "tampered.json"
    bad.write_bytes(cred.content.replace(b'"credits":"4"', b'"credits":"5"', 1))
    assert bad.read_bytes() != good.read_bytes()
    result = CliRunner().invoke(cli_app, ["verify", str(bad), "--did-document", str(did)])
    assert result.exit_code == 1 and "INVALID" in result.output and "signature" in result.output


def test_did_web_resolves_for_a_base_url_with_a_path(database_url, tmp_path) -> None:
    """`https://example.gov.cn/creditbank` → `did:web:example.gov.cn:creditbank`, which a resolver fetches at
    `https://example.gov.cn/creditbank/did.json`: the node serves it there (proxy keeping the path) and at
    `/did.json` (proxy stripping it); a root base URL serves only `/.well-known/did.json`."""
    from fastapi.testclient import TestClient

    from crypto.did import did_web_to_url
    from node.app import create_app
    from tests.conftest import make_settings

    settings = make_settings(database_url, tmp_path / "data", base_url="https://example.gov.cn/creditbank")
    with TestClient(create_app(settings)) as client:
        did = client.app.state.ctx.identity.did
        assert did == "did:web:example.gov.cn:creditbank"
        assert did_web_to_url(did) == "https://example.gov.cn/creditbank/did.json"
        for path in ("/creditbank/did.json", "/did.json", "/.well-known/did.json"):
            r = client.get(path)
            assert r.status_code == 200 and r.json()["id"] == did, path
        assert client.get("/other/did.json").status_code == 404
    root = make_settings(database_url, tmp_path / "root")
    with TestClient(create_app(root)) as client:
        assert client.get("/did.json").status_code == 404
        assert client.get("/.well-known/did.json").status_code == 200
