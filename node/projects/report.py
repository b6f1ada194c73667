"""The signed list of exemptions granted under a 双证融通 project, for the skills appraisal centre.

The seed's process (seed-001 二（一）1): the institution applies to the appraisal centre for the theory-exam
exemptions, and the centre grants them "凭学分银行学历教育课程成绩信息" — on the credit bank's word. The node's word is
this document: a Verifiable Credential (type `ExemptionReport`) signed with the node key like every credential
(`eddsa-jcs-2022`), checked by `POST /api/v1/verify` or by anyone with the node's DID document. Each entry names the
learner's exemption statement (the credential the learner holds: its subject is the learner's pseudonym), the
learner's account number (the number the bank's 成绩证明 carries), the rule and version that granted it and the
ledger event of the approval. It never carries an ID number.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from node.credentials.context import FEDERATION_CONTEXT, VC_V2
from node.models import Learner
from node.deps import Principal
from node.models.projects import DcExemptionReport, DcProject
from node.projects import service
from node.models.standards import ConversionItem, ExemptionStatement
from node.standards import service as standards

__all__ = ["build_report", "granted_exemptions", "issue_report"]


def granted_exemptions(session: Session, project: DcProject) -> list[dict[str, Any]]:
    """Every exemption approved under any version of the project's rules and not revoked, in approval order."""
    refs = {(r["id"], int(r["version"])) for r in project.rule_refs}
    if not refs:
        return []
    ids = sorted({r[0] for r in refs})
    rows = session.execute(
        sa.select(ConversionItem, ExemptionStatement, Learner.account_no)
        .join(ExemptionStatement, ExemptionStatement.item_id == ConversionItem.id)
        .join(Learner, Learner.id == ExemptionStatement.learner_id)
        .where(ConversionItem.rule_id.in_(ids), ConversionItem.status == "approved",  # type: ignore[attr-defined]
               ExemptionStatement.revoked.is_(False))  # type: ignore[attr-defined]
        .order_by(ConversionItem.ledger_seq, ConversionItem.id)
    ).all()
    out = []
    for item, statement, account_no in rows:
        if (item.rule_id, item.rule_version) not in refs:
            continue
        target = item.target or {}
        out.append({
            "statementId": statement.document.get("id"),
            "learnerAccount": account_no,
            "certificate": target.get("code"),
            "level": target.get("level"),
            "component": target.get("component"),
            "recordedGrade": item.recorded_grade,
            "rule": {"ruleId": item.rule_id, "version": item.rule_version},
            "grantedOn": statement.created_at.date().isoformat() if statement.created_at else None,
            "ledgerSequence": item.ledger_seq,
        })
    return out


def build_report(session: Session, ctx: Any, *, project: DcProject, report_id: int,
                 issued: dt.datetime | None = None) -> tuple[dict, int]:
    """The unsigned report (the caller signs it) and the number of exemptions it lists."""
    issued = (issued or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    catalogue = standards.build_catalogue(session)
    certificate = catalogue.certificates.get(project.certificate_code)
    programme = catalogue.programmes.get(project.programme_code)
    institution = catalogue.institutions.get(project.institution_code)
    recipient_code = certificate.issuer_code if certificate else None
    recipient = catalogue.institutions.get(recipient_code or "")
    entries = granted_exemptions(session, project)
    base = ctx.settings.base_url
    document = {
        "@context": [VC_V2, FEDERATION_CONTEXT],
        "id": f"{base}/credentials/project-reports/{report_id}",
        "type": ["VerifiableCredential", "ExemptionReport"],
        "issuer": {"id": ctx.identity.did, "name": ctx.settings.region.name_zh},
        "validFrom": issued.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "name": f"双证融通项目免考名单：{project.title}",
        "credentialSubject": {
            "id": f"{base}/projects/{project.id}",
            "recipient": {"code": recipient_code,
                          "name": (recipient.name if recipient else None)
                          or (certificate.issuer_name if certificate else None)},
            "project": {
                "id": project.id, "title": project.title, "mode": project.mode,
                "institution": {"code": project.institution_code, "name": institution.name if institution else None},
                "programme": {"code": project.programme_code, "name": programme.name if programme else None},
                "certificate": {"code": project.certificate_code, "name": certificate.name if certificate else None,
                                "level": project.certificate_level},
                "state": project.state,
                "rules": [{"ruleId": r["id"], "version": int(r["version"])} for r in project.rule_refs],
            },
            "count": len(entries),
            "exemptions": entries,
        },
    }
    return document, len(entries)


def issue_report(session: Session, ctx: Any, *, project: DcProject, admin: Principal,
                 period: str | None = None) -> DcExemptionReport:
    """Build, sign (node key, like every credential) and keep a report; its ledger event and audit entry.
    `period`: the scheduled report's period (node.projects.schedule), once per project."""
    service.expect(project, ("published", "suspended", "ended"), "report exemptions")
    report = DcExemptionReport(project_id=project.id, count=0, document={}, created_by=standards.actor_ref(admin),
                               period=period)
    session.add(report)
    session.flush()
    unsigned, count = build_report(session, ctx, project=project, report_id=report.id)
    report.document, report.count = ctx.identity.sign(unsigned), count
    service.record_report(session, project=project, admin=admin, report=report)
    session.flush()
    return report
