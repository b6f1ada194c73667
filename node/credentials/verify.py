"""Verifying credentials and transcripts: signature, issuer key (known / rotated / revoked), status, dates,
inclusion in the issuer's log, and that the logged event is the record's (`ledger_event_check`). Pure: what it needs from the outside (DID documents, status list credentials,
inclusion checks) is passed in as functions, so the same code serves `POST /api/v1/verify` and the offline
`creditnode verify FILE --did-document did.json`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from crypto.dataintegrity import verify as di_verify
from crypto.did import resolve_verification_method
from crypto.errors import LeafError, UnknownVerificationMethod
from crypto.jsonld import ContextLoader
from crypto.leaf import open_leaf
from crypto.merkle import leaf_hash
from crypto.statuslist import StatusList

__all__ = ["Check", "Report", "StatusListError", "ledger_event_check", "person_view", "report_state", "status_bit",
           "verify_document"]

DidResolver = Callable[[str], dict | None]
StatusFetcher = Callable[[str], dict | None]
InclusionChecker = Callable[[dict], tuple[bool, str] | None]


@dataclass
class Check:
    check: str
    ok: bool | None  # None: could not be checked (reported, not counted as failure)
    reason: str


@dataclass
class Report:
    valid: bool
    kind: str
    id: str | None
    checks: list[Check] = field(default_factory=list)
    credentials: list[Report] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _parse_time(value: str | None) -> dt.datetime | None:
    if not value or not isinstance(value, str):  # a non-string date (a number) is no date
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _issuer_id(doc: dict) -> str | None:
    issuer = doc.get("issuer")
    return issuer.get("id") if isinstance(issuer, dict) else issuer


def _signature_checks(doc: dict, resolve_did: DidResolver, expected_controller: str | None,
                      loader: ContextLoader | None = None) -> list[Check]:
    checks: list[Check] = []
    proofs = doc.get("proof")
    if not proofs:
        return [Check("signature", False, "the document has no proof")]
    key_states: dict[str, str] = {}

    def resolve(vm_id: str):
        did = vm_id.split("#", 1)[0]
        if expected_controller and did != expected_controller:
            raise LookupError(f"key {vm_id} does not belong to the issuer {expected_controller}")
        did_doc = resolve_did(did)
        if did_doc is None:
            raise LookupError(f"the issuer {did} is not known (no DID document)")
        try:
            resolved = resolve_verification_method(did_doc, vm_id)
        except UnknownVerificationMethod:
            refresh = getattr(resolve_did, "refresh", None)  # a cached copy may predate a key rotation
            fresh = refresh(did) if refresh is not None else None
            if fresh is None:
                raise
            resolved = resolve_verification_method(fresh, vm_id)
        key_states[vm_id] = "revoked" if resolved.revoked else ("rotated" if resolved.expires else "current")
        if resolved.revoked:
            raise LookupError(f"key {vm_id} was revoked at {resolved.revoked}")
        return resolved.public_key

    result = di_verify(doc, resolve, loader=loader)
    raw = proofs if isinstance(proofs, list) else [proofs]
    for index, proof in enumerate(result.proofs):
        vm = proof.verification_method
        suite = raw[index].get("cryptosuite") if index < len(raw) and isinstance(raw[index], dict) else None
        label = f"{vm} ({suite})" if isinstance(suite, str) else f"{vm}"
        if proof.ok:
            state = key_states.get(vm, "current")
            detail = "signed by the issuer's current key" if state == "current" else (
                "signed by a rotated-out key that is still published (valid for old signatures)")
            checks.append(Check("signature", True, f"{label}: {detail}"))
        else:
            checks.append(Check("signature", False, f"{label}: {proof.reason}"))
    return checks


def _date_checks(doc: dict, now: dt.datetime) -> list[Check]:
    checks = []
    valid_from, valid_until = _parse_time(doc.get("validFrom")), _parse_time(doc.get("validUntil"))
    if doc.get("validFrom") and valid_from is None:
        checks.append(Check("dates", False, "validFrom is not a date-time"))
    elif doc.get("validUntil") is not None and valid_until is None:
        checks.append(Check("dates", False, "validUntil is not a date-time"))
    elif valid_from and valid_from > now:
        checks.append(Check("dates", False, f"not valid before {doc['validFrom']}"))
    elif valid_until and valid_until < now:
        checks.append(Check("dates", False, f"expired at {doc['validUntil']}"))
    else:
        checks.append(Check("dates", True, "within its validity period"))
    return checks


class StatusListError(ValueError):
    """A status list that cannot be trusted or read: its proof fails, or the entry or list is malformed."""


def status_bit(entry: dict, listing: dict, resolve_did: DidResolver, issuer: str | None) -> bool:
    """The bit of status `entry` in `listing`, the signed status list credential it points to, after the
    list's proof is checked against `issuer`'s keys. Raises StatusListError."""
    if not all(c.ok for c in _signature_checks(listing, resolve_did, issuer)):
        raise StatusListError("the status list credential's signature does not verify")
    try:
        return StatusList.decode(listing["credentialSubject"]["encodedList"]).get(int(entry["statusListIndex"]))
    except (KeyError, ValueError, IndexError, TypeError) as exc:
        raise StatusListError(f"malformed status entry or list: {exc}") from None


def _status_checks(doc: dict, fetch_status: StatusFetcher | None, resolve_did: DidResolver) -> list[Check]:
    entry = doc.get("credentialStatus")
    if not entry:
        return [Check("status", None, "the credential has no status entry")]
    if fetch_status is None:
        return [Check("status", None, "status list not available offline")]
    url = entry.get("statusListCredential")
    listing = fetch_status(url) if url else None
    if listing is None:
        return [Check("status", None, f"status list {url} could not be fetched")]
    try:
        revoked = status_bit(entry, listing, resolve_did, _issuer_id(doc))
    except StatusListError as exc:
        return [Check("status", False, str(exc))]
    if revoked:
        return [Check("status", False, f"revoked ({entry.get('statusPurpose', 'revocation')} bit set)")]
    return [Check("status", True, "not revoked")]


def _credential_number(doc: dict) -> int | None:
    """The achievement number at the end of a credential id `<base>/credentials/achievements/<n>`."""
    head, _, tail = str(doc.get("id") or "").rpartition("/credentials/achievements/")
    return int(tail) if head and tail.isdigit() and len(tail) < 19 else None


def ledger_event_check(doc: dict, leaf: str | None) -> Check:
    """Is `leaf` (the ledger leaf the credential's `creditBank.ledgerSequence`/`ledgerLeafHash` name) this
    record's deposit, about this credential's subject? A v2 leaf is opened with `creditBank.ledgerOpening`
    and the subject's id; a v1 leaf shows its data but cannot prove the subject (docs/ledger.md)."""
    subject = doc.get("credentialSubject") if isinstance(doc.get("credentialSubject"), dict) else {}
    bank = subject.get("creditBank") if isinstance(subject.get("creditBank"), dict) else {}
    if not isinstance(leaf, str):
        return Check("ledger_event", False, "no ledger leaf for the credential's event")
    if leaf_hash(leaf.encode("utf-8")).hex() != bank.get("ledgerLeafHash"):
        return Check("ledger_event", False, "the leaf presented is not the one the credential names")
    given = bank.get("ledgerOpening")
    opening = ({"salt": given.get("salt"), "data": given.get("data"), "subject": subject.get("id")}
               if isinstance(given, dict) else None)
    try:
        event = open_leaf(leaf, opening)
    except LeafError as exc:
        return Check("ledger_event", False, str(exc))
    problems = []
    if event.seq != bank.get("ledgerSequence"):
        problems.append(f"the leaf is event {event.seq}, the credential names {bank.get('ledgerSequence')}")
    if event.kind != "achievement.deposited":
        problems.append(f"the leaf records {event.kind}, not a deposit")
    if event.data.get("achievement") != _credential_number(doc):
        problems.append("the leaf is the deposit of another record")
    logged, stated = event.data.get("credits"), bank.get("credits")
    if logged != stated:
        try:
            same = Decimal(str(logged)) == Decimal(str(stated))
        except ArithmeticError:
            same = False
        if not same:
            problems.append(f"the leaf records {logged} credits, the credential {stated}")
    if problems:
        return Check("ledger_event", False, "; ".join(problems))
    about = ("about the credential's subject (opened with its salt)" if event.subject is not None
             else "(a version-1 leaf: its subject cannot be shown)")
    return Check("ledger_event", True, f"event {event.seq} is this record's deposit {about}")


def verify_document(
    doc: dict,
    *,
    resolve_did: DidResolver,
    fetch_status: StatusFetcher | None = None,
    check_inclusion: InclusionChecker | None = None,
    now: dt.datetime | None = None,
    loader: ContextLoader | None = None,
) -> Report:
    """Check a credential or presentation. Every proof of a proof set must verify (`eddsa-jcs-2022`, and
    `eddsa-rdfc-2022` with `loader`'s contexts: the bundled ones by default)."""
    now = now or dt.datetime.now(dt.UTC)
    if not isinstance(doc, dict):
        return Report(False, "unknown", None, [Check("format", False, "not a JSON object")])
    raw_types = doc.get("type") or []
    types = [raw_types] if isinstance(raw_types, str) else (
        [t for t in raw_types if isinstance(t, str)] if isinstance(raw_types, list) else [])
    if "VerifiablePresentation" in types:
        report = Report(True, "presentation", doc.get("id"))
        report.checks += _signature_checks(doc, resolve_did, None, loader)
        credentials = doc.get("verifiableCredential") or []
        for cred in credentials if isinstance(credentials, list) else [credentials]:
            report.credentials.append(
                verify_document(cred, resolve_did=resolve_did, fetch_status=fetch_status,
                                check_inclusion=check_inclusion, now=now, loader=loader)
            )
        report.valid = all(c.ok is not False for c in report.checks) and all(c.valid for c in report.credentials)
        return report
    if "VerifiableCredential" not in types:
        return Report(False, "unknown", doc.get("id"), [Check("format", False, "not a credential or presentation")])
    report = Report(True, "credential", doc.get("id"))
    issuer = _issuer_id(doc)
    if not issuer:
        report.checks.append(Check("issuer", False, "the credential names no issuer"))
    report.checks += _signature_checks(doc, resolve_did, issuer, loader)
    report.checks += _date_checks(doc, now)
    report.checks += _status_checks(doc, fetch_status, resolve_did)
    if check_inclusion is not None:
        outcome = check_inclusion(doc)
        if outcome is None:
            report.checks.append(Check("inclusion", None, "no ledger reference or log not reachable"))
        else:
            report.checks.append(Check("inclusion", outcome[0], outcome[1]))
    report.valid = all(c.ok is not False for c in report.checks)
    return report


def report_state(report: Report) -> str:
    """`valid`, `revoked` (only the status bit fails) or `invalid`."""
    if report.valid:
        return "valid"
    failed = [c for c in report.checks if c.ok is False]
    nested = [report_state(r) for r in report.credentials]
    if failed and all(c.check == "status" and c.reason.startswith("revoked") for c in failed) \
            and all(s != "invalid" for s in nested):
        return "revoked"
    if not failed and nested and all(s in ("valid", "revoked") for s in nested):
        return "revoked"
    return "invalid"


def _record(credential: Any, report: Report) -> dict:
    credential = credential if isinstance(credential, dict) else {}
    subject = credential.get("credentialSubject") if isinstance(credential.get("credentialSubject"), dict) else {}
    bank = subject.get("creditBank") if isinstance(subject.get("creditBank"), dict) else {}
    achievement = subject.get("achievement") if isinstance(subject.get("achievement"), dict) else {}
    institution = bank.get("issuingInstitution") if isinstance(bank.get("issuingInstitution"), dict) else {}
    return {"id": report.id, "title": str(achievement.get("name") or credential.get("name") or ""),
            "kind": str(bank.get("achievementKind") or ""), "institution": str(institution.get("name") or ""),
            "credits": str(bank.get("credits") or ""), "hours": str(bank.get("hours") or ""),
            "score": str(bank.get("score") or ""), "date": str(bank.get("earnedOn") or ""),
            "state": report_state(report)}


def person_view(document: Any, report: Report, *, issuers: dict[str, tuple[str, str]]) -> dict:
    """What a person checking a transcript or credential needs to see: the overall state, the issuing region
    (named from the membership, `issuers`: DID → (name_zh, name_en)), the learner's name as printed (only when
    the presentation's signature verifies), each record and its state, and every check."""
    doc = document if isinstance(document, dict) else {}
    proofs = doc.get("proof") if isinstance(doc.get("proof"), list) else [doc.get("proof")]
    signer = next((p["verificationMethod"].split("#", 1)[0] for p in proofs
                   if isinstance(p, dict) and isinstance(p.get("verificationMethod"), str)), None)
    issuer = _issuer_id(doc) if report.kind == "credential" else signer
    issuer = issuer if isinstance(issuer, str) else None
    names = issuers.get(issuer or "") if issuer else None
    signed = any(c.check == "signature" and c.ok for c in report.checks) and \
        not any(c.check == "signature" and c.ok is False for c in report.checks)
    if report.kind == "presentation":
        raw = doc.get("verifiableCredential") or []
        credentials = raw if isinstance(raw, list) else [raw]
        records = [_record(c, r) for c, r in zip(credentials, report.credentials, strict=False)]
    elif report.kind == "credential":
        records = [_record(doc, report)]
    else:
        records = []
    return {
        "state": report_state(report),
        "kind": report.kind,
        "issuer": {"did": issuer, "name_zh": names[0] if names else None, "name_en": names[1] if names else None,
                   "member": names is not None},
        "learner_name": str(doc.get("learnerName")) if signed and report.kind == "presentation"
        and isinstance(doc.get("learnerName"), str) else None,
        "issued": str(doc.get("issuedAt") or doc.get("validFrom") or "") if signed else "",
        "records": records,
        "checks": [asdict(c) for c in report.checks],
    }
