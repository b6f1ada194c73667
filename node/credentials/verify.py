"""Verifying credentials and transcripts: signature, issuer key (known / rotated / revoked), status, dates,
inclusion in the issuer's log. Pure: what it needs from the outside (DID documents, status list credentials,
inclusion checks) is passed in as functions, so the same code serves `POST /api/v1/verify` and the offline
`creditnode verify FILE --did-document did.json`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from crypto.dataintegrity import verify as di_verify
from crypto.did import resolve_verification_method
from crypto.statuslist import StatusList

__all__ = ["Check", "Report", "StatusListError", "status_bit", "verify_document"]

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


def _signature_checks(doc: dict, resolve_did: DidResolver, expected_controller: str | None) -> list[Check]:
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
        resolved = resolve_verification_method(did_doc, vm_id)
        key_states[vm_id] = "revoked" if resolved.revoked else ("rotated" if resolved.expires else "current")
        if resolved.revoked:
            raise LookupError(f"key {vm_id} was revoked at {resolved.revoked}")
        return resolved.public_key

    result = di_verify(doc, resolve)
    for proof in result.proofs:
        vm = proof.verification_method
        if proof.ok:
            state = key_states.get(vm, "current")
            detail = "signed by the issuer's current key" if state == "current" else (
                "signed by a rotated-out key that is still published (valid for old signatures)")
            checks.append(Check("signature", True, f"{vm}: {detail}"))
        else:
            checks.append(Check("signature", False, f"{vm}: {proof.reason}"))
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


def verify_document(
    doc: dict,
    *,
    resolve_did: DidResolver,
    fetch_status: StatusFetcher | None = None,
    check_inclusion: InclusionChecker | None = None,
    now: dt.datetime | None = None,
) -> Report:
    now = now or dt.datetime.now(dt.UTC)
    if not isinstance(doc, dict):
        return Report(False, "unknown", None, [Check("format", False, "not a JSON object")])
    types = doc.get("type") or []
    types = [types] if isinstance(types, str) else types
    if "VerifiablePresentation" in types:
        report = Report(True, "presentation", doc.get("id"))
        report.checks += _signature_checks(doc, resolve_did, None)
        for cred in doc.get("verifiableCredential") or []:
            report.credentials.append(
                verify_document(cred, resolve_did=resolve_did, fetch_status=fetch_status,
                                check_inclusion=check_inclusion, now=now)
            )
        report.valid = all(c.ok is not False for c in report.checks) and all(c.valid for c in report.credentials)
        return report
    if "VerifiableCredential" not in types:
        return Report(False, "unknown", doc.get("id"), [Check("format", False, "not a credential or presentation")])
    report = Report(True, "credential", doc.get("id"))
    issuer = _issuer_id(doc)
    if not issuer:
        report.checks.append(Check("issuer", False, "the credential names no issuer"))
    report.checks += _signature_checks(doc, resolve_did, issuer)
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
