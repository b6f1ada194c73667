"""Signed achievement records: W3C VC 2.0 credentials shaped as Open Badges 3.0 AchievementCredentials,
with the credit-bank fields in the node's own context, an `eddsa-jcs-2022` proof by the node's current key,
a Bitstring Status List entry, and the ledger event that deposited the record (so its inclusion in the node's
log can be proven). The subject is the learner's pseudonym: no ID number, no name.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import sqlalchemy as sa
from sqlmodel import Session, select

from node.counters import reserve
from node.credentials.context import CREDITBANK_CONTEXT_PATH, OB_V3, VC_V2
from node.errors import Conflict, NotFound
from node.models import Achievement, Learner, LedgerEvent, Organisation

__all__ = [
    "STATUS_LIST_SIZE",
    "achievement_credential",
    "build_achievement_credential",
    "credential_id",
    "ensure_status_index",
    "transcript",
]

STATUS_LIST_SIZE = 131_072

# Our achievement kinds → Open Badges 3.0 achievementType vocabulary.
_OB_TYPE = {
    "degree_course": "Course",
    "self_study_course": "Course",
    "vocational_qualification": "Certificate",
    "skill_level": "Certification",
    "training": "Certificate",
    "community": "Achievement",
    "informal": "Achievement",
}
_GROUP = {
    "degree_course": "degree",
    "self_study_course": "degree",
    "vocational_qualification": "certificate",
    "skill_level": "certificate",
    "training": "training",
    "community": "other",
    "informal": "other",
}


def _iso(value: dt.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def credential_id(base_url: str, achievement_id: int) -> str:
    return f"{base_url}/credentials/achievements/{achievement_id}"


def ensure_status_index(session: Session, achievement: Achievement) -> int:
    if achievement.status_index is None:
        achievement.status_index = reserve(session, "status_index") - 1
        session.add(achievement)
        session.flush()
    return achievement.status_index


def status_entry(base_url: str, status_index: int) -> dict:
    """A credential's `BitstringStatusListEntry` (revocation) at `status_index` of the node's status lists."""
    list_no, bit = divmod(status_index, STATUS_LIST_SIZE)
    status_list = f"{base_url}/status/{list_no}"
    return {"id": f"{status_list}#{bit}", "type": "BitstringStatusListEntry", "statusPurpose": "revocation",
            "statusListIndex": str(bit), "statusListCredential": status_list}


def build_achievement_credential(
    *, base_url: str, did: str, issuer_name: str, achievement: Achievement, learner: Learner,
    institution: Organisation | None, event: LedgerEvent | None, status_index: int,
    reference_levels: dict[str, str] | None = None,
) -> dict:
    """The unsigned credential (pure; the caller signs it). `reference_levels` maps the region's native
    framework levels to the shared reference levels; a record at a native level states its reference level,
    so a destination needs no copy of this region's framework to apply a reference-level mapping."""
    record = {
        "type": "CreditBankRecord",
        "achievementKind": achievement.type,
        "institutionCode": achievement.issuer_code,
        "issuingInstitution": {
            "id": f"{base_url}/institutions/{achievement.issuer_code}",
            "name": institution.name if institution else achievement.issuer_name or achievement.issuer_code,
        },
        "source": achievement.source,
    }
    optional = {
        "credits": _dec(achievement.credits),
        "hours": _dec(achievement.hours),
        "level": achievement.level,
        "referenceLevel": (reference_levels or {}).get(achievement.level or ""),
        "score": achievement.score_text,
        "courseCode": achievement.code or None,
        "term": achievement.term,
        "earnedOn": achievement.earned_on.isoformat() if achievement.earned_on else None,
        "expiresOn": achievement.expires_on.isoformat() if achievement.expires_on else None,
    }
    record.update({k: v for k, v in optional.items() if v is not None})
    if event is not None:
        record.update(ledgerSequence=event.seq, ledgerLeafHash=event.hash.hex(), ledgerLog=f"{base_url}/api/v1/ledger")
        if event.salt is not None and event.opening is not None:  # v2: whoever holds the credential can open
            # the leaf (`crypto.leaf.open_leaf` with the subject's id): this event, about this subject, says this
            record["ledgerOpening"] = {"salt": bytes(event.salt).hex(), "data": json.loads(event.opening)["data"]}
    subject: dict = {
        "id": learner.pseudonym,
        "type": ["AchievementSubject"],
        "achievement": {
            "id": f"{base_url}/achievements/{achievement.issuer_code}/{achievement.code or achievement.id}",
            "type": ["Achievement"],
            "achievementType": _OB_TYPE.get(achievement.type, "Achievement"),
            "name": achievement.title,
            "criteria": {"narrative": f"{achievement.title}（{achievement.issuer_name or achievement.issuer_code}）"},
        },
        "creditBank": record,
    }
    # OB 3.0's `creditsEarned` is a JSON float; credits travel only as exact decimal strings (creditBank.credits).
    credential = {
        "@context": [VC_V2, OB_V3, f"{base_url}{CREDITBANK_CONTEXT_PATH}"],
        "id": credential_id(base_url, achievement.id),
        "type": ["VerifiableCredential", "AchievementCredential"],
        "issuer": {"id": did, "type": ["Profile"], "name": issuer_name},
        "validFrom": _iso(achievement.created_at),
        "name": achievement.title,
        "credentialSubject": subject,
        "credentialStatus": status_entry(base_url, status_index),
    }
    if achievement.expires_on:
        credential["validUntil"] = f"{achievement.expires_on.isoformat()}T23:59:59Z"
    return credential


def _deposit_event(session: Session, achievement_id: int) -> LedgerEvent | None:
    return session.exec(
        select(LedgerEvent)
        .where(LedgerEvent.achievement_id == achievement_id)
        .where(LedgerEvent.kind == "achievement.deposited")
        .order_by(LedgerEvent.seq)
        .limit(1)
    ).first()


def achievement_credential(session: Session, ctx, achievement_id: int, *, learner_id: int | None = None) -> dict:
    """The signed credential of a deposited achievement (a learner may only export their own)."""
    achievement = session.get(Achievement, achievement_id)
    if achievement is None or (learner_id is not None and achievement.learner_id != learner_id):
        raise NotFound("no such achievement")
    if achievement.status not in ("deposited", "revoked"):
        raise Conflict("only deposited achievements can be exported", code="not_deposited")
    learner = session.get(Learner, achievement.learner_id)
    institution = (session.get(Organisation, achievement.issuer_org_id) if achievement.issuer_org_id else None)
    index = ensure_status_index(session, achievement)
    unsigned = build_achievement_credential(
        base_url=ctx.settings.base_url, did=ctx.identity.did, issuer_name=ctx.settings.region.name_zh,
        achievement=achievement, learner=learner, institution=institution,
        event=_deposit_event(session, achievement.id), status_index=index,
        reference_levels={lv.code: lv.reference_level for lv in ctx.settings.region.framework_levels},
    )
    if "non_jcs_canonicalisation" in ctx.settings.active_faults:  # FAULT HOOK (test mode only)
        from node.testing.faults import sign_without_jcs
        return sign_without_jcs(ctx, unsigned)
    return ctx.identity.sign(unsigned)


def transcript(session: Session, ctx, learner_id: int) -> dict:
    """A signed Verifiable Presentation of all the learner's deposited records."""
    learner = session.get(Learner, learner_id)
    if learner is None:
        raise NotFound("no such learner")
    ids = session.execute(
        sa.select(Achievement.id)
        .where(Achievement.learner_id == learner_id, Achievement.status == "deposited")
        .order_by(Achievement.id)
    ).scalars()
    credentials = [achievement_credential(session, ctx, i) for i in ids]
    presentation = {
        "@context": [VC_V2],
        "type": ["VerifiablePresentation"],
        "id": f"{ctx.settings.base_url}/transcripts/{learner.pseudonym.removeprefix('urn:uuid:')}/{_iso(dt.datetime.now(dt.UTC))}",
        "holder": learner.pseudonym,
        "verifiableCredential": credentials,
    }
    return ctx.identity.sign(presentation, proof_purpose="assertionMethod")


def group_of(kind: str) -> str:
    return _GROUP.get(kind, "other")
