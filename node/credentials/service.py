"""Signed achievement records: W3C VC 2.0 credentials that are Open Badges 3.0 AchievementCredentials (valid
against the OB 3.0 JSON Schema; description, creator, creditsAvailable/creditsEarned, result/resultDescription,
humanCode, awardedDate, credentialSchema), with the credit bank's exact record in `creditBank` (federation
context), a proof set by the node's current key (`eddsa-jcs-2022`, plus `eddsa-rdfc-2022` on exports), a
Bitstring Status List entry, and the ledger event that deposited the record (so its inclusion in the node's log
can be proven). The subject is the learner's pseudonym: no ID number, no name. docs/credentials.md.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import time
import uuid
from types import SimpleNamespace
from decimal import Decimal

import orjson
import sqlalchemy as sa
from sqlmodel import Session

from crypto.dataintegrity import JCS, RDFC
from crypto.jcs import canonicalize
from crypto.rdfc import EmbeddedDataset, canonicalize_embedding
from node.counters import reserve
from node.credentials.cache import SignedCache, embedded_datasets, signed_credentials
from node.credentials.context import (
    FEDERATION_CONTEXT,
    OB_SCHEMA,
    VC_V2,
    credential_contexts,
    federation_context_pin,
)
from node.errors import Conflict, NotFound
from node.models import Achievement, IssuedTranscript, Learner, LedgerEvent, Organisation

__all__ = [
    "DEPOSITED_RECORDS",
    "ONE_RECORD",
    "STATUS_LIST_SIZE",
    "achievement_credential",
    "achievement_credential_json",
    "build_achievement_credential",
    "cached_credential",
    "credential_key",
    "issuer_constants",
    "credential_id",
    "ensure_status_index",
    "issued_transcript",
    "printed_transcript",
    "reused_transcript",
    "reused_transcripts",
    "transcript",
    "transcript_json",
    "transcript_totals",
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
    "university_course_certificate": "Course",
    "cultural_leisure": "Achievement",
}
_GROUP = {
    "degree_course": "degree",
    "self_study_course": "degree",
    "vocational_qualification": "certificate",
    "skill_level": "certificate",
    "training": "training",
    "community": "other",
    "informal": "other",
    "university_course_certificate": "other",
    "cultural_leisure": "other",
}


def _iso(value: dt.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _ob_number(value: Decimal) -> int | float:
    """OB 3.0's credit fields are JSON numbers (xsd:float): an int when whole (keeps JCS on its fast path),
    else a float. The exact value travels as a decimal string in `creditBank.credits`."""
    return int(value) if value == value.to_integral_value() else float(value)


_KIND_ZH = {
    "degree_course": "学历教育课程成绩",
    "self_study_course": "自学考试课程",
    "vocational_qualification": "职业资格证书",
    "skill_level": "职业技能等级证书",
    "training": "培训证书",
    "community": "社区教育学习成果",
    "informal": "非正式学习成果",
    "university_course_certificate": "大学课程证书",
    "cultural_leisure": "文化休闲教育学习成果",
}


def _score_type(score: str) -> str:
    try:
        Decimal(score)
    except ArithmeticError:
        return "LetterGrade"  # 优/良/中/及格/合格 …
    return "RawScore"


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
    institution_name = institution.name if institution else achievement.issuer_name or achievement.issuer_code
    institution_ref = {"id": f"{base_url}/institutions/{achievement.issuer_code}", "name": institution_name}
    record = {
        "type": "CreditBankRecord",
        "achievementKind": achievement.type,
        "institutionCode": achievement.issuer_code,
        "issuingInstitution": institution_ref,
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
    achievement_id = f"{base_url}/achievements/{achievement.issuer_code}/{achievement.code or achievement.id}"
    kind_zh = _KIND_ZH.get(achievement.type, "学习成果")
    ob_achievement: dict = {
        "id": achievement_id,
        "type": ["Achievement"],
        "achievementType": _OB_TYPE.get(achievement.type, "Achievement"),
        "name": achievement.title,
        "description": f"{kind_zh}：{achievement.title}（{institution_name}）",
        "criteria": {"narrative": f"{achievement.title}（{achievement.issuer_name or achievement.issuer_code}）"},
        "creator": {**institution_ref, "type": ["Profile"]},
    }
    if achievement.code:
        ob_achievement["humanCode"] = achievement.code
    if achievement.credits is not None:
        ob_achievement["creditsAvailable"] = _ob_number(achievement.credits)
    subject: dict = {
        "id": learner.pseudonym,
        "type": ["AchievementSubject"],
        "achievement": ob_achievement,
    }
    if achievement.credits is not None:
        subject["creditsEarned"] = _ob_number(achievement.credits)
    if achievement.score_text:
        score_id = f"{achievement_id}#score"
        ob_achievement["resultDescription"] = [{"id": score_id, "type": ["ResultDescription"], "name": "成绩",
                                                "resultType": _score_type(achievement.score_text)}]
        subject["result"] = [{"type": ["Result"], "resultDescription": score_id, "value": achievement.score_text}]
    if achievement.term:
        subject["term"] = achievement.term
    subject["creditBank"] = record
    credential = {
        "@context": credential_contexts(),
        "id": credential_id(base_url, achievement.id),
        "type": ["VerifiableCredential", "AchievementCredential"],
        "issuer": {"id": did, "type": ["Profile"], "name": issuer_name, "url": base_url},
        "validFrom": _iso(achievement.created_at),
        "awardedDate": _iso(achievement.created_at),
        "name": achievement.title,
        "credentialSubject": subject,
        "credentialSchema": [dict(OB_SCHEMA)],
        "credentialStatus": status_entry(base_url, status_index),
        "relatedResource": [federation_context_pin()],
    }
    if achievement.expires_on:
        credential["validUntil"] = f"{achievement.expires_on.isoformat()}T23:59:59Z"
    return credential


# What a credential is made of, in one row: the record's columns, the learner's pseudonym, the institution's
# name and the first deposit event (one query for one record or for all of a learner's, no ORM objects).
_RECORD_COLUMNS = (
    Achievement.id, Achievement.learner_id, Achievement.type, Achievement.issuer_org_id, Achievement.issuer_code,
    Achievement.issuer_name, Achievement.code, Achievement.title, Achievement.credits, Achievement.hours,
    Achievement.score_text, Achievement.level, Achievement.earned_on, Achievement.term, Achievement.expires_on,
    Achievement.source, Achievement.status, Achievement.status_index, Achievement.created_at,
)

_STATUS_INDEX = [c.key for c in _RECORD_COLUMNS].index("status_index")


def _records_statement(*conditions) -> sa.Select:
    first_deposit = (
        sa.select(sa.func.min(LedgerEvent.seq))
        .where(LedgerEvent.achievement_id == Achievement.id, LedgerEvent.kind == "achievement.deposited")
        .correlate(Achievement)
        .scalar_subquery()
    )
    return (
        sa.select(*_RECORD_COLUMNS, Learner.pseudonym, Organisation.name.label("institution_name"),
                  LedgerEvent.seq.label("event_seq"), LedgerEvent.hash.label("event_hash"),
                  LedgerEvent.salt.label("event_salt"), LedgerEvent.opening.label("event_opening"))
        .join(Learner, Learner.id == Achievement.learner_id)
        .outerjoin(Organisation, Organisation.id == Achievement.issuer_org_id)
        .outerjoin(LedgerEvent, LedgerEvent.seq == first_deposit)
        .where(*conditions)
        .order_by(Achievement.id)
    )


# Built once (a statement's building and cache key cost more than running it), run on the session's connection.
ONE_RECORD = _records_statement(Achievement.id == sa.bindparam("achievement_id"))
DEPOSITED_RECORDS = _records_statement(Achievement.learner_id == sa.bindparam("learner_id"),
                                        Achievement.status == "deposited")


def _records(session: Session, statement: sa.Select, params: dict) -> list[sa.Row]:
    return list(session.connection().execute(statement, params).all())


def _ensure_index(session: Session, row: sa.Row) -> int:
    if row.status_index is not None:
        return row.status_index
    return ensure_status_index(session, session.get(Achievement, row.id))  # first export: reserve one (a write)


def _signed_record(session: Session, ctx, row: sa.Row, *, rdfc: bool, index: int | None = None,
                   issuer: tuple | None = None) -> tuple[dict | None, bytes]:
    """The signed credential of one record row: (the document if it was just built, else None; its JSON).
    A deposited record's credential comes from `signed_credentials` when nothing it is made of has changed
    (node.credentials.cache); a revoked one is always built and signed afresh. `index`: its status-list index if
    the caller reserved it; `issuer`: `issuer_constants(ctx)` if the caller signs many."""
    settings, identity = ctx.settings, ctx.identity
    index = _ensure_index(session, row) if index is None else index
    issuer = issuer or issuer_constants(ctx)
    level_map = issuer[1]
    key = credential_key(ctx, row, index, rdfc=rdfc, issuer=issuer)
    if key is not None:
        cached = signed_credentials.get(key)
        if cached is not None:
            return None, cached
    event = None
    if row.event_seq is not None:
        event = SimpleNamespace(seq=row.event_seq, hash=bytes(row.event_hash), opening=row.event_opening,
                                salt=None if row.event_salt is None else bytes(row.event_salt))
    institution = None
    if row.issuer_org_id and row.institution_name is not None:
        institution = SimpleNamespace(name=row.institution_name)
    unsigned = build_achievement_credential(
        base_url=settings.base_url, did=identity.did, issuer_name=settings.region.name_zh,
        achievement=row, learner=SimpleNamespace(pseudonym=row.pseudonym), institution=institution, event=event,
        status_index=index, reference_levels=level_map,
    )
    if "non_jcs_canonicalisation" in settings.active_faults:  # FAULT HOOK (test mode only)
        from node.testing.faults import sign_without_jcs
        signed = sign_without_jcs(ctx, unsigned)
    else:
        signed = identity.sign_proof_set(unsigned, cryptosuites=(JCS, RDFC) if rdfc else (JCS,))
    data = orjson.dumps(signed)
    if key is not None:
        signed_credentials.put(key, data)
    return signed, data


def credential_key(ctx, row, index: int, *, rdfc: bool, issuer: tuple | None = None) -> tuple | None:
    """The key of a record row's signed credential in `signed_credentials` (node.credentials.cache says what it
    is made of), with its status-list `index`; None for a credential never cached (a revoked record). `issuer`:
    `issuer_constants(ctx)` when the caller keys many rows."""
    if row.status != "deposited" or "non_jcs_canonicalisation" in ctx.settings.active_faults:
        return None
    constants, level_map = issuer or issuer_constants(ctx)
    values = list(row)
    for i, value in enumerate(values):
        if isinstance(value, memoryview):
            values[i] = bytes(value)
    values[_STATUS_INDEX] = index  # reserved by this read or an earlier one: the same credential
    return (tuple(values), constants, level_map.get(row.level or ""), rdfc)


def issuer_constants(ctx) -> tuple[tuple, dict[str, str]]:
    """What every credential of this node is signed with and says of its issuer: (base URL, DID, key id, public
    key, name), and the region's reference levels."""
    settings, identity = ctx.settings, ctx.identity
    return ((settings.base_url, identity.did, identity.key_id, identity.signing_key.public_key.raw,
             settings.region.name_zh), _reference_levels(settings))


def cached_credential(ctx, row, *, rdfc: bool) -> bytes | None:
    """A record row's signed credential if it is cached (an exported, deposited record signed since the process
    started and unchanged since), else None. Reads nothing and writes nothing: the fast lane's credential."""
    if row.status_index is None:
        return None
    key = credential_key(ctx, row, row.status_index, rdfc=rdfc)
    return None if key is None else signed_credentials.get(key)


def _reference_levels(settings) -> dict[str, str]:
    return {lv.code: lv.reference_level for lv in settings.region.framework_levels}


def _one_record(session: Session, achievement_id: int, learner_id: int | None) -> sa.Row:
    rows = _records(session, ONE_RECORD, {"achievement_id": achievement_id})
    if not rows or (learner_id is not None and rows[0].learner_id != learner_id):
        raise NotFound("no such achievement")
    if rows[0].status not in ("deposited", "revoked"):
        raise Conflict("only deposited achievements can be exported", code="not_deposited")
    return rows[0]


def achievement_credential(session: Session, ctx, achievement_id: int, *, learner_id: int | None = None,
                           rdfc: bool = False) -> dict:
    """The signed credential of a deposited achievement (a learner may only export their own): a proof set with
    an `eddsa-jcs-2022` proof, and an `eddsa-rdfc-2022` one too when `rdfc` (exports for wallets and other
    verifiers; peers and the bulk path need only JCS). A fresh dict the caller may keep or change."""
    signed, data = _signed_record(session, ctx, _one_record(session, achievement_id, learner_id), rdfc=rdfc)
    return orjson.loads(data) if signed is None else signed


def achievement_credential_json(session: Session, ctx, achievement_id: int, *, learner_id: int | None = None,
                                rdfc: bool = False) -> bytes:
    """`achievement_credential` serialised (UTF-8 JSON), as the routes send it."""
    return _signed_record(session, ctx, _one_record(session, achievement_id, learner_id), rdfc=rdfc)[1]


def transcript_totals(credentials: list[dict]) -> list[dict]:
    """Count, credits and hours per credential group (degree, certificate, training, other), from the records'
    exact decimals, in that order."""
    totals: dict[str, dict] = {}
    for cred in credentials:
        bank = (cred.get("credentialSubject") or {}).get("creditBank") or {}
        group = group_of(bank.get("achievementKind") or "")
        row = totals.setdefault(group, {"group": group, "count": 0, "credits": Decimal(0), "hours": Decimal(0)})
        row["count"] += 1
        row["credits"] += Decimal(bank.get("credits") or 0)
        row["hours"] += Decimal(bank.get("hours") or 0)
    order = ["degree", "certificate", "training", "other"]
    return [{**row, "credits": format(row["credits"], "f"), "hours": format(row["hours"], "f")}
            for row in sorted(totals.values(), key=lambda r: order.index(r["group"]))]


def transcript(session: Session, ctx, learner_id: int, *, transcript_id: str | None = None,
               rdfc: bool = True) -> dict:
    """A signed Verifiable Presentation (`CreditBankTranscript`) of all the learner's deposited records: the
    learner's name (never the ID number), the issue time, totals by group, and each credential; proof sets
    with `eddsa-jcs-2022` and (unless `rdfc` is False) `eddsa-rdfc-2022`, on the presentation and on every
    credential. `transcript_id` is the presentation's id (the verification link of a printed transcript)."""
    learner = session.get(Learner, learner_id)
    if learner is None:
        raise NotFound("no such learner")
    rows = _records(session, DEPOSITED_RECORDS, {"learner_id": learner_id})
    return _transcript_of(session, ctx, learner, rows, [_ensure_index(session, row) for row in rows],
                          transcript_id=transcript_id, rdfc=rdfc)


def _transcript_of(session: Session, ctx, learner, rows, indexes: list[int], *, transcript_id: str | None,
                   rdfc: bool) -> dict:
    credentials, serialised = [], []
    issuer = issuer_constants(ctx)
    for row, index in zip(rows, indexes, strict=True):
        signed, data = _signed_record(session, ctx, row, rdfc=rdfc, index=index, issuer=issuer)
        credentials.append(orjson.loads(data) if signed is None else signed)
        serialised.append(data)
    now = _iso(dt.datetime.now(dt.UTC))
    presentation = {
        "@context": [VC_V2, FEDERATION_CONTEXT],
        "type": ["VerifiablePresentation", "CreditBankTranscript"],
        "id": transcript_id or f"urn:uuid:{uuid.uuid4()}",
        "holder": learner.pseudonym,
        "learnerName": ctx.cipher.decrypt(learner.name_cipher, learner.key_id),
        "issuerName": ctx.settings.region.name_zh,
        "issuedAt": now,
        "totals": transcript_totals(credentials),
        "verifiableCredential": credentials,
    }
    return _sign_presentation(ctx, presentation, serialised, rdfc=rdfc)


# Signed transcripts kept for reuse: (learner, everything the presentation is made of) -> (monotonic time signed,
# its JSON). A learner who asks again within `node.transcript_reuse_seconds`, nothing in it changed, gets the same
# presentation: its id, issue time and proofs (two proofs over every embedded credential: ~10 ms of CPU). Bounded
# by entries and by their bytes (32 MiB a process; ~66 KB for 20 records, least recently used out first).
reused_transcripts = SignedCache(max_entries=1024, value_type=tuple, max_weight=32 << 20,
                                 weigh=lambda entry: len(entry[1]))


def _transcript_key(ctx, learner_id: int, learner, rows, indexes, *, rdfc: bool) -> tuple | None:
    keys = []
    issuer = issuer_constants(ctx)
    for row, index in zip(rows, indexes, strict=True):
        key = credential_key(ctx, row, index, rdfc=rdfc, issuer=issuer)
        if key is None:
            return None
        keys.append(key)
    return (learner_id, learner.pseudonym, ctx.cipher.decrypt(learner.name_cipher, learner.key_id),
            ctx.settings.region.name_zh, tuple(keys), rdfc)


def _reused(ctx, key: tuple | None) -> bytes | None:
    window = ctx.settings.node.transcript_reuse_seconds
    if key is None or window <= 0:
        return None
    found = reused_transcripts.get(key)
    if found is None or time.monotonic() - found[0] > window:
        return None
    return found[1]


def reused_transcript(ctx, learner_id: int, learner, rows, *, rdfc: bool = True) -> bytes | None:
    """The learner's transcript JSON if one was signed within the reuse window from exactly these rows (of
    `DEPOSITED_RECORDS`, every one exported), else None. Reads and writes nothing: the fast lane's transcript."""
    if any(row.status_index is None for row in rows):
        return None
    return _reused(ctx, _transcript_key(ctx, learner_id, learner, rows, [r.status_index for r in rows], rdfc=rdfc))


def transcript_json(session: Session, ctx, learner_id: int) -> bytes:
    """`transcript(...)` as the API sends it (UTF-8 JSON): reused when the same learner asked within
    `node.transcript_reuse_seconds` and nothing in it changed, else signed afresh (and kept for reuse)."""
    learner = session.get(Learner, learner_id)
    if learner is None:
        raise NotFound("no such learner")
    rows = _records(session, DEPOSITED_RECORDS, {"learner_id": learner_id})
    indexes = [_ensure_index(session, row) for row in rows]
    key = _transcript_key(ctx, learner_id, learner, rows, indexes, rdfc=True)
    data = _reused(ctx, key)
    if data is None:
        data = orjson.dumps(_transcript_of(session, ctx, learner, rows, indexes, transcript_id=None, rdfc=True))
        if key is not None and ctx.settings.node.transcript_reuse_seconds > 0:
            reused_transcripts.put(key, (time.monotonic(), data))
    return data


def _sign_presentation(ctx, presentation: dict, serialised: list[bytes], *, rdfc: bool) -> dict:
    """The presentation with its proof set (as `NodeIdentity.sign_proof_set` makes it: one `created`, JCS then
    RDFC). The RDFC-1.0 form of the presentation is composed from each embedded credential's RDF dataset, built
    once per credential (`embedded_datasets`, keyed by the credential's bytes) — the same N-Quads as
    canonicalising the whole presentation, which is what a verifier does (crypto.rdfc)."""
    identity = ctx.identity
    created = _iso(dt.datetime.now(dt.UTC))
    proofs = [identity.sign(presentation, created=created, cryptosuite=JCS)["proof"]]
    if rdfc:
        datasets = []
        for data, credential in zip(serialised, presentation["verifiableCredential"], strict=True):
            dataset = embedded_datasets.get(data)
            if dataset is None:
                dataset = EmbeddedDataset.of(credential)
                embedded_datasets.put(data, dataset)
            datasets.append(dataset)
        canonical = canonicalize_embedding(presentation, "verifiableCredential", datasets)
        proofs.append(identity.sign(presentation, created=created, cryptosuite=RDFC,
                                    canonical_document=canonical)["proof"])
    return {**presentation, "proof": proofs}


def printed_transcript(session: Session, ctx, learner_id: int) -> tuple[bytes, IssuedTranscript]:
    """The transcript PDF (成绩证明): a fresh signed presentation whose id is its public verification link
    `{base_url}/verify/{token}` (printed and in the QR code), kept under that random token so the link shows
    its verification (revocations included) later; the PDF embeds the presentation."""
    from node.credentials.pdf import render_transcript_pdf

    token = secrets.token_urlsafe(12)
    presentation = transcript(session, ctx, learner_id, transcript_id=f"{ctx.settings.base_url}/verify/{token}")
    row = IssuedTranscript(token=token, learner_id=learner_id, document=presentation,
                           document_hash=hashlib.sha256(canonicalize(presentation)).hexdigest())
    session.add(row)
    session.flush()
    region = ctx.settings.region
    return render_transcript_pdf(presentation, issuer_name_zh=region.name_zh, issuer_name_en=region.name_en), row


def issued_transcript(session: Session, token: str) -> IssuedTranscript | None:
    """The printed transcript behind a QR link (None for anything that is not one of our tokens)."""
    if not token or len(token) > 32 or not all(c.isascii() and (c.isalnum() or c in "-_") for c in token):
        return None
    return session.get(IssuedTranscript, token)


def group_of(kind: str) -> str:
    return _GROUP.get(kind, "other")
