"""Exemption statements (学分认可型): a learner whose courses cover a certificate's exam component gets a
Verifiable Credential signed by the node key (eddsa-jcs-2022), to present at the skills appraisal centre.

The subject is the learner's pseudonymous id (never the ID number); the statement lists the courses used and the
rule id and version that decided it, and names the ledger event of the approval. `POST /api/v1/verify` checks it
like any credential of this node (signature by the node's DID, dates)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlmodel import Session, select

from node.counters import reserve
from node.credentials.context import FEDERATION_CONTEXT, VC_V2
from node.credentials.service import status_entry
from node.models import Achievement, Learner
from node.models.standards import ConversionItem, ConversionRequest, ExemptionStatement
from node.standards import service as standards

__all__ = ["build_statement", "issue_statement"]

_COMPONENT_ZH = {"theory": "理论考核", "skills": "技能考核", "all": "证书考核"}


def build_statement(*, base_url: str, did: str, issuer_name: str, item: ConversionItem, learner: Learner,
                    courses: list[Achievement], certificate_name: str | None, issued: dt.datetime,
                    status_index: int) -> dict:
    """The unsigned statement (pure; the caller signs it). Its status entry is revoked when a course it used is
    (docs/conversion.md, "Revoked sources")."""
    target = item.target
    title = target.get("name") or f"{certificate_name or target.get('code')}（{target.get('level') or ''}）"
    return {
        "@context": [VC_V2, FEDERATION_CONTEXT],
        "id": f"{base_url}/credentials/exemptions/{item.id}",
        "type": ["VerifiableCredential", "ExemptionStatement"],
        "issuer": {"id": did, "name": issuer_name},
        "validFrom": issued.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "name": f"免考证明：{title}",
        "credentialSubject": {
            "id": learner.pseudonym,
            "exemption": {
                "certificate": target.get("code"),
                "certificateName": certificate_name,
                "level": target.get("level"),
                "component": target.get("component"),
                "componentName": _COMPONENT_ZH.get(target.get("component") or "", target.get("component")),
                "title": title,
                "recordedGrade": item.recorded_grade,
            },
            "coursesUsed": [
                {"achievementId": a.id, "code": a.code, "title": a.title, "institutionCode": a.issuer_code,
                 "institutionName": a.issuer_name, "score": a.score_text,
                 "credits": None if a.credits is None else format(a.credits, "f"),
                 "earnedOn": a.earned_on.isoformat() if a.earned_on else None}
                for a in courses
            ],
            "rule": {"ruleId": item.rule_id, "version": item.rule_version},
            "explanation": item.explanation_zh,
            "ledgerSequence": item.ledger_seq,
        },
        "credentialStatus": status_entry(base_url, status_index),
    }


def issue_statement(session: Session, ctx: Any, *, req: ConversionRequest, item: ConversionItem,
                    learner: Learner) -> ExemptionStatement:
    courses = list(session.exec(select(Achievement).where(Achievement.id.in_(item.sources))  # type: ignore[union-attr]
                                .order_by(Achievement.id)).all())
    catalogue = standards.build_catalogue(session, req.on_date)
    certificate = catalogue.certificates.get(item.target.get("code") or "")
    index = reserve(session, "status_index") - 1  # the counter achievements' status bits come from
    unsigned = build_statement(base_url=ctx.settings.base_url, did=ctx.identity.did,
                               issuer_name=ctx.settings.region.name_zh, item=item, learner=learner, courses=courses,
                               certificate_name=certificate.name if certificate else None,
                               issued=dt.datetime.now(dt.UTC).replace(microsecond=0), status_index=index)
    row = ExemptionStatement(item_id=item.id, learner_id=learner.id, document=ctx.identity.sign(unsigned),
                             status_index=index)
    session.add(row)
    return row
