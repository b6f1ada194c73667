"""What a third-party verifier runs on the node's documents: JSON-LD safe-mode expansion (no dropped term, no
relative IRI, no protected-term clash), RDFC canonicalization, the official OB 3.0 JSON Schema, both proofs of
the proof set, and the federation context served and pinned as documented."""

from __future__ import annotations

import copy
import json
from decimal import Decimal

import pytest
from jsonschema import Draft201909Validator, FormatChecker

from crypto.dataintegrity import JCS, RDFC
from crypto.dataintegrity import verify as di_verify
from crypto.did import resolve_verification_method
from crypto.jsonld import canonicalize_rdfc, digest_sri, expand_safe
from node.credentials.context import FEDERATION_CONTEXT, FEDERATION_CONTEXT_PATH, federation_context_pin
from node.credentials.verify import verify_document
from node.db import session_scope
from tests.crypto.conftest import vector_path


def _login(client, ctx, learner_id: int) -> dict:
    from node.models import Learner

    with session_scope(ctx.engine) as s:
        account = s.get(Learner, learner_id).account_no
    r = client.post("/api/v1/auth/token", data={"username": account, "password": "learner-pass-1"})
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture(scope="module")
def ob_schema() -> Draft201909Validator:
    schema = json.loads(vector_path("1edtech-ob3-schema", "ob_v3p0_achievementcredential_schema.json").read_text())
    Draft201909Validator.check_schema(schema)
    return Draft201909Validator(schema, format_checker=FormatChecker())


def _key_resolver(client):
    did_doc = client.get("/.well-known/did.json").json()
    return lambda vm: resolve_verification_method(did_doc, vm)


def _suites(doc: dict) -> list[str]:
    return [p["cryptosuite"] for p in doc["proof"]]


def test_exported_credential_is_valid_ob3_json_ld_with_both_proofs(client, ctx, deposit, ob_schema) -> None:
    learner_id, achievement_id = deposit(title="大学英语", credits="2.5", level="SH-3")
    cred = client.get(f"/api/v1/me/credentials/{achievement_id}", headers=_login(client, ctx, learner_id)).json()
    errors = sorted(ob_schema.iter_errors(cred), key=str)
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]]
    assert _suites(cred) == [JCS, RDFC]
    expand_safe(cred)  # proofs included: nothing dropped anywhere
    assert canonicalize_rdfc({k: v for k, v in cred.items() if k != "proof"})
    result = di_verify(cred, _key_resolver(client))
    assert result.ok and [p.code for p in result.proofs] == ["ok", "ok"]
    achievement = cred["credentialSubject"]["achievement"]
    assert achievement["description"] and achievement["creator"]["type"] == ["Profile"]
    assert achievement["humanCode"] == "MATH101" and achievement["creditsAvailable"] == 2.5
    assert cred["credentialSubject"]["creditsEarned"] == 2.5
    result_ = cred["credentialSubject"]["result"][0]
    assert result_["value"] == "85" and result_["resultDescription"] == achievement["resultDescription"][0]["id"]
    assert cred["awardedDate"] and cred["credentialSchema"][0]["type"] == "1EdTechJsonSchemaValidator2019"
    assert cred["relatedResource"] == [federation_context_pin()]
    # the credit bank's exact record keeps its meaning (peers read it)
    bank = cred["credentialSubject"]["creditBank"]
    assert bank["credits"] == "2.5" and bank["referenceLevel"] == "R3" and bank["ledgerSequence"] >= 0


def test_each_proof_of_the_set_fails_on_its_own_when_tampered(client, ctx, deposit) -> None:
    learner_id, achievement_id = deposit(title="高等数学", credits="4")
    cred = client.get(f"/api/v1/me/credentials/{achievement_id}", headers=_login(client, ctx, learner_id)).json()
    assert cred["credentialSubject"]["creditsEarned"] == 4 and isinstance(cred["credentialSubject"]["creditsEarned"],
                                                                          int)
    tampered = copy.deepcopy(cred)
    tampered["credentialSubject"]["creditBank"]["credits"] = "5"
    codes = [p.code for p in di_verify(tampered, _key_resolver(client)).proofs]
    assert codes == ["signature_invalid", "signature_invalid"]
    # a change JSON-LD does not see (key order) breaks neither; a change JCS sees but RDFC does not (a term that
    # no context defines would be dropped by RDFC) cannot be made: safe mode refuses such documents
    reordered = dict(reversed(list(cred.items())))
    assert di_verify(reordered, _key_resolver(client)).ok
    report = verify_document(tampered, resolve_did={ctx.identity.did: ctx.identity.did_document()}.get)
    assert not report.valid and sum(1 for c in report.checks if c.check == "signature" and c.ok is False) == 2


def test_transcript_expands_safely_and_both_proofs_verify(client, ctx, deposit) -> None:
    learner_id, _ = deposit(title="高等数学", credits="4")
    deposit(title="电工", credits="3", type="vocational_qualification", learner_id=learner_id)
    vp = client.get("/api/v1/me/transcript", headers=_login(client, ctx, learner_id)).json()
    assert vp["type"] == ["VerifiablePresentation", "CreditBankTranscript"]
    assert vp["learnerName"] == "测试学员" and _suites(vp) == [JCS, RDFC]
    assert {t["group"]: (t["count"], Decimal(t["credits"])) for t in vp["totals"]} == {
        "degree": (1, Decimal(4)), "certificate": (1, Decimal(3))}
    expand_safe(vp)
    assert all(_suites(c) == [JCS, RDFC] for c in vp["verifiableCredential"])
    assert di_verify(vp, _key_resolver(client)).ok
    verdict = client.post("/api/v1/verify", json=vp).json()
    assert verdict["valid"], verdict


def test_status_list_and_did_document_expand_safely(client, ctx, deposit) -> None:
    learner_id, achievement_id = deposit()
    cred = client.get(f"/api/v1/me/credentials/{achievement_id}", headers=_login(client, ctx, learner_id)).json()
    listing = client.get(cred["credentialStatus"]["statusListCredential"].removeprefix(ctx.settings.base_url)).json()
    expand_safe(listing)
    canonicalize_rdfc({k: v for k, v in listing.items() if k != "proof"})
    expand_safe(client.get("/.well-known/did.json").json())


def test_federation_context_is_served_byte_for_byte_and_pinned(client) -> None:
    served = client.get(FEDERATION_CONTEXT_PATH)
    assert served.status_code == 200 and served.headers["content-type"].startswith("application/ld+json")
    pin = federation_context_pin()
    assert pin == {"id": FEDERATION_CONTEXT, "digestSRI": digest_sri(served.content)}
    from federation.membership import founding_document

    assert founding_document()["context"] == pin, "the founding membership must pin the bundled context"
    discovery = client.get("/.well-known/credit-node").json()
    assert discovery["context"]["id"] == FEDERATION_CONTEXT
    # the old per-node context keeps serving for credentials issued before
    assert client.get("/contexts/creditbank/v1").json()["@context"]["creditBank"]["@id"] == "cb:creditBank"


def test_the_federation_context_composes_with_vc_ob_and_clr() -> None:
    """No term of the federation context clashes with a protected term of VC 2.0, OB 3.0.3 or CLR 2.0 in any
    order, and every type-scoped term of those contexts stays usable beside it."""
    from crypto.jsonld import bundled_contexts

    ours = json.loads(bundled_contexts()[FEDERATION_CONTEXT])["@context"]
    others = {}
    for url in ("https://www.w3.org/ns/credentials/v2", "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json",
                "https://purl.imsglobal.org/spec/clr/v2p0/context-2.0.1.json"):
        ctx = json.loads(bundled_contexts()[url])["@context"]
        others[url] = set(ctx)
        for value in ctx.values():
            if isinstance(value, dict) and isinstance(value.get("@context"), dict):
                others[url] |= set(value["@context"])
    clash = {t for t in ours if not t.startswith("@") and t not in ("id", "type")} & set().union(*others.values())
    assert clash == set()
    doc = {"@context": ["https://www.w3.org/ns/credentials/v2", FEDERATION_CONTEXT,
                        "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"],
           "type": ["VerifiableCredential", "AchievementCredential"], "issuer": "did:example:1",
           "credentialSubject": {"type": ["AchievementSubject"], "source": {"id": "https://example.org/s"},
                                 "term": "2024", "achievement": {"id": "https://example.org/a",
                                                                 "type": ["Achievement"], "name": "x"},
                                 "creditBank": {"type": "CreditBankRecord", "term": "202406", "level": "三级",
                                                "source": "import"}}}
    expand_safe(doc)


def test_exemption_statement_expands_safely() -> None:
    import datetime as dt

    from node.conversion.statement import build_statement
    from node.models import Achievement, Learner
    from node.models.standards import ConversionItem

    item = ConversionItem(id=7, request_id=1, target={"code": "ELEC-3", "level": "三级", "component": "theory"},
                          recorded_grade="合格", rule_id="SH-GS-CRED-2016-ELECTRICIAN-3", rule_version=1,
                          explanation_zh="课程覆盖理论考核", ledger_seq=12)
    course = Achievement(id=3, learner_id=1, type="degree_course", issuer_code="U001", issuer_name="上海开放大学",
                         code="EE101", title="电工基础", credits=Decimal("3.0"), score_text="85",
                         earned_on=dt.date(2024, 6, 30))
    learner = Learner(pseudonym="urn:uuid:00000000-0000-4000-8000-000000000001")
    statement = build_statement(base_url="http://127.0.0.1:8101", did="did:web:127.0.0.1%3A8101",
                                issuer_name="上海市终身教育学分银行", item=item, learner=learner, courses=[course],
                                certificate_name="电工", issued=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
                                status_index=5)
    expand_safe(statement)
    canonicalize_rdfc(statement)
