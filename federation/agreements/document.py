"""The agreement document: shape check, hash, proof set, chain verification, and recognition (all pure).

A version is valid when it is well formed, its `previous` names the hash of the version before it (same agreement,
version n-1), and — to be *complete* — it carries one verifying `eddsa-jcs-2022` proof from every party, each made
with a key from that party's DID document (docs/agreements.md).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from crypto.dataintegrity import verify as di_verify
from crypto.did import resolve_verification_method
from crypto.errors import CanonicalizationError
from crypto.jcs import canonicalize
from node.errors import BadRequest

__all__ = [
    "STATUSES",
    "AgreementInvalid",
    "ChainReport",
    "Recognition",
    "agreement_hash",
    "check_shape",
    "covers",
    "merge_proofs",
    "proof_signers",
    "proofs_of",
    "recognise",
    "sign_agreement",
    "unsecured",
    "verify_chain",
]

STATUSES = ("active", "suspended", "terminated")
RECOGNITION = ("automatic", "reviewed")
DidDocuments = dict[str, dict]  # node id -> DID document


class AgreementInvalid(BadRequest):
    code = "agreement_invalid"


def unsecured(document: dict) -> dict:
    return {k: v for k, v in document.items() if k != "proof"}


def agreement_hash(document: dict) -> str:
    """`sha256(JCS(document without "proof"))`, hex: what every party signs and what `previous` names. A document
    RFC 8785 cannot write (an integer past 2**53, NaN, an infinity) is refused: 400 agreement_invalid."""
    try:
        return hashlib.sha256(canonicalize(unsecured(document))).hexdigest()
    except CanonicalizationError as exc:
        raise AgreementInvalid(f"the document cannot be canonicalised (RFC 8785): {exc}") from None


def proofs_of(document: dict) -> list[dict]:
    proof = document.get("proof")
    if proof is None:
        return []
    return [p for p in (proof if isinstance(proof, list) else [proof]) if isinstance(p, dict)]


def merge_proofs(document: dict, proofs: list[dict]) -> dict:
    """The document with the union of its proofs and `proofs` (deduplicated by proof value)."""
    merged = proofs_of(document)
    seen = {p.get("proofValue") for p in merged}
    for p in proofs:
        if isinstance(p, dict) and p.get("proofValue") not in seen:
            merged.append(p)
            seen.add(p.get("proofValue"))
    out = unsecured(document)
    if merged:
        out["proof"] = merged
    return out


def sign_agreement(document: dict, identity: Any) -> dict:
    """Add `identity`'s proof over the unsecured document to its proof set."""
    signed = identity.sign(unsecured(document))
    return merge_proofs(document, proofs_of(signed))


def _decimal(value: Any, where: str) -> Decimal:
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise AgreementInvalid(f"{where} is not a decimal: {value!r}") from exc
    if not d.is_finite() or d < 0:
        raise AgreementInvalid(f"{where} must be a non-negative decimal")
    return d


def _date(value: Any, where: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise AgreementInvalid(f"{where} must be a YYYY-MM-DD date") from exc


def check_shape(document: Any) -> None:
    """Refuse (400 `agreement_invalid`) a document that is not a well-formed agreement version."""
    if not isinstance(document, dict) or document.get("type") != "MutualRecognitionAgreement":
        raise AgreementInvalid("not a MutualRecognitionAgreement document")
    agreement_hash(document)  # every number representable in RFC 8785 (else agreement_invalid)
    if not isinstance(document.get("agreement"), str) or not document["agreement"] \
            or len(document["agreement"]) > 200:
        raise AgreementInvalid("`agreement` must be a stable id (at most 200 characters)")
    version = document.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise AgreementInvalid("`version` must be an integer ≥ 1")
    previous = document.get("previous")
    if (version == 1) != (previous is None) or (previous is not None and
                                                (not isinstance(previous, str) or len(previous) != 64)):
        raise AgreementInvalid("`previous` is null for version 1 and the previous version's hash otherwise")
    parties = document.get("parties")
    if not isinstance(parties, list) or len(parties) < 2 or len(set(parties)) != len(parties) \
            or not all(isinstance(p, str) and p for p in parties):
        raise AgreementInvalid("`parties` must list two or more distinct node ids")
    if document.get("proposer") not in parties:
        raise AgreementInvalid("the proposer must be a party")
    scope = document.get("scope")
    if not isinstance(scope, dict) or not isinstance(scope.get("achievement_types"), list) \
            or not scope["achievement_types"]:
        raise AgreementInvalid("`scope.achievement_types` must be a non-empty list")
    if "programmes" in scope and not isinstance(scope["programmes"], list):
        raise AgreementInvalid("`scope.programmes` must be a list")
    equivalence = document.get("credit_equivalence")
    if not isinstance(equivalence, dict) or set(equivalence) != set(parties):
        raise AgreementInvalid("`credit_equivalence` needs an entry for every party")
    for node, entry in equivalence.items():
        if not isinstance(entry, dict) or _decimal(entry.get("hours_per_credit"), f"{node} hours_per_credit") == 0:
            raise AgreementInvalid(f"`credit_equivalence.{node}.hours_per_credit` must be positive")
    mappings = document.get("mappings")
    if not isinstance(mappings, list):
        raise AgreementInvalid("`mappings` must be a list")
    for i, m in enumerate(mappings):
        src, dst = (m.get("from"), m.get("to")) if isinstance(m, dict) else (None, None)
        if not isinstance(src, dict) or not isinstance(dst, dict) or src.get("node") not in parties \
                or not isinstance(src.get("achievement_type"), str):
            raise AgreementInvalid(f"mapping {i} needs `from` (a party node, achievement_type) and `to`")
        if "to_node" in m and m["to_node"] not in parties:
            raise AgreementInvalid(f"mapping {i}: `to_node` must be a party")
        if "reference_level" in src:
            if dst.get("reference_level") != src["reference_level"]:
                raise AgreementInvalid(f"mapping {i}: a reference-level mapping maps a level to the same level")
        elif not isinstance(src.get("code"), str) or not isinstance(dst.get("code"), str):
            raise AgreementInvalid(f"mapping {i}: a direct mapping needs `from.code` and `to.code`")
        for side, where in ((src, "from"), (dst, "to")):
            if "level" in side and not (isinstance(side["level"], str) and 0 < len(side["level"]) <= 20):
                raise AgreementInvalid(f"mapping {i}: `{where}.level` must be a level code (1–20 characters)")
        if dst.get("credits") is not None:
            _decimal(dst["credits"], f"mapping {i} credits")
    if document.get("recognition") not in RECOGNITION:
        raise AgreementInvalid("`recognition` must be automatic or reviewed")
    start = _date(document.get("valid_from"), "`valid_from`")
    if document.get("valid_to") is not None and _date(document["valid_to"], "`valid_to`") < start:
        raise AgreementInvalid("`valid_to` is before `valid_from`")
    if document.get("status") not in STATUSES:
        raise AgreementInvalid("`status` must be active, suspended or terminated")


def covers(document: dict, *, origin: str, destination: str, on: dt.date) -> bool:
    """True when the version is in force between the two parties on `on` (status active, inside its dates)."""
    parties = document.get("parties") or []
    if origin not in parties or destination not in parties or origin == destination:
        return False
    if document.get("status") != "active":
        return False
    if dt.date.fromisoformat(document["valid_from"]) > on:
        return False
    return document.get("valid_to") is None or dt.date.fromisoformat(document["valid_to"]) >= on


# -- proofs and chain ------------------------------------------------------------------------------------------


def _resolver(did_documents: DidDocuments) -> Callable[[str], Any]:
    by_did = {doc.get("id"): doc for doc in did_documents.values() if isinstance(doc, dict)}

    def resolve(vm_id: str) -> Any:
        doc = by_did.get(vm_id.split("#", 1)[0])
        if doc is None:
            return None
        try:
            return resolve_verification_method(doc, vm_id)
        except (KeyError, ValueError, LookupError):
            return None

    return resolve


def proof_signers(document: dict, did_documents: DidDocuments) -> tuple[set[str], list[dict]]:
    """(parties with a verifying proof, problems). A proof counts for the party whose DID its key belongs to."""
    parties = set(document.get("parties") or [])
    did_to_node = {doc.get("id"): node for node, doc in did_documents.items() if isinstance(doc, dict)}
    signers: set[str] = set()
    problems: list[dict] = []
    if not proofs_of(document):
        return signers, problems
    outcome = di_verify(document, _resolver(did_documents))
    for p in outcome.proofs:
        vm = p.verification_method or ""
        node = did_to_node.get(vm.split("#", 1)[0])
        if not p.ok:
            problems.append({"code": "proof_invalid", "message": f"proof by {vm or '?'} does not verify: {p.reason}"})
        elif node not in parties:
            problems.append({"code": "not_a_party", "message": f"proof by {vm} is not from a party"})
        else:
            signers.add(node)
    return signers, problems


@dataclass
class ChainReport:
    """Verification of an agreement's whole history: every link and every proof."""

    agreement: str
    ok: bool = True
    versions: list[dict] = field(default_factory=list)
    problems: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"agreement": self.agreement, "ok": self.ok, "versions": self.versions, "problems": self.problems}


def verify_chain(documents: list[dict], did_documents: DidDocuments) -> ChainReport:
    """Check a history: versions 1..n of one agreement, each `previous` equal to the hash of the one before, parties
    unchanged only by a fully-signed version, and each version's proofs verifying with the parties' keys.

    Several documents may share a version number (rival counter-proposals); the chain followed is the one ending at
    the highest version. Incomplete versions are reported (`complete: false`) but are not an error."""
    report = ChainReport(agreement=str(documents[0].get("agreement")) if documents else "")
    by_hash = {agreement_hash(d): d for d in documents}
    if not documents:
        report.ok = False
        report.problems.append({"code": "empty", "message": "no versions"})
        return report
    head = max(documents, key=lambda d: (d.get("version", 0), len(proofs_of(d))))
    chain: list[dict] = []
    cur: dict | None = head
    while cur is not None:
        chain.append(cur)
        prev = cur.get("previous")
        if prev is None:
            break
        cur = by_hash.get(prev)
        if cur is None:
            report.problems.append({"code": "chain_broken", "message": f"previous version {prev} is missing"})
    chain.reverse()
    for i, doc in enumerate(chain):
        h = agreement_hash(doc)
        entry = {"version": doc.get("version"), "hash": h, "status": doc.get("status"), "complete": False}
        try:
            check_shape(doc)
        except AgreementInvalid as exc:
            report.problems.append({"code": "agreement_invalid", "message": f"v{doc.get('version')}: {exc.message}"})
        if doc.get("agreement") != report.agreement:
            report.problems.append({"code": "chain_broken", "message": "versions of different agreements"})
        if i > 0 and (doc.get("version") != chain[i - 1].get("version", 0) + 1
                      or doc.get("previous") != agreement_hash(chain[i - 1])):
            report.problems.append({"code": "chain_broken", "message": f"v{doc.get('version')} is not chained"})
        signers, problems = proof_signers(doc, did_documents)
        report.problems.extend(problems)
        entry["signers"] = sorted(signers)
        entry["complete"] = signers == set(doc.get("parties") or [])
        report.versions.append(entry)
    report.ok = not report.problems
    return report


# -- recognition --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recognition:
    """What the destination recognises for one origin record under an agreement."""

    code: str | None
    title: str | None
    credits: Decimal
    hours: Decimal | None
    level: str | None  # the destination's native framework level (reference-level mappings)
    reference_level: str | None
    automatic: bool
    mapping_index: int
    explanation: str


def _region_levels(node: str) -> dict[str, str]:
    """Native framework level code -> reference level for a region in `config/regions/` (empty if unknown)."""
    from config.settings import load_region

    try:
        return {lv.code: lv.reference_level for lv in load_region(node).framework_levels}
    except (ValueError, OSError):
        return {}


def _native_level(node: str, reference_level: str) -> str | None:
    for code, ref in _region_levels(node).items():
        if ref == reference_level:
            return code
    return None


def _dec(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() else None


def _thousandths(d: Decimal) -> Decimal:
    return d.quantize(Decimal("0.001"), rounding=ROUND_HALF_UP).normalize()


def recognise(agreement: dict, *, origin: str, destination: str, record: dict) -> Recognition | None:
    """Apply the agreement's mappings to one origin record (the credit-bank fields of a verified credential).

    `record` keys: `type`/`kind` (achievement type), `code`, `title`, `credits`, `hours`, `level`,
    `reference_level` (derived from the origin region's framework when absent). A direct mapping matches the
    record's code and, when it names `from.level`, its level (a certificate's 三级 is not its 四级). The first
    applicable mapping wins. Credits: the mapping's fixed `to.credits`, else the record's hours divided by the destination's hours
    per credit, else the origin credits converted through both regions' hours per credit. None when the record's
    type is out of scope, a programme scope excludes it, or no mapping applies."""
    parties = agreement.get("parties") or []
    if origin not in parties or destination not in parties or origin == destination:
        return None
    scope = agreement.get("scope") or {}
    kind = record.get("type") or record.get("kind") or record.get("achievement_type")
    if kind not in (scope.get("achievement_types") or []):
        return None
    programmes = scope.get("programmes")
    if programmes and record.get("programme") is not None and record.get("programme") not in programmes:
        return None
    ref_level = record.get("reference_level") or _region_levels(origin).get(record.get("level") or "")
    equivalence = agreement.get("credit_equivalence") or {}
    hpc_origin = _dec((equivalence.get(origin) or {}).get("hours_per_credit"))
    hpc_dest = _dec((equivalence.get(destination) or {}).get("hours_per_credit"))
    automatic = agreement.get("recognition") == "automatic"
    for index, mapping in enumerate(agreement.get("mappings") or []):
        src, dst = mapping.get("from") or {}, mapping.get("to") or {}
        if src.get("node") != origin or src.get("achievement_type") != kind:
            continue
        if mapping.get("to_node") not in (None, destination):
            continue
        if "reference_level" in src:
            if ref_level is None or src["reference_level"] != ref_level:
                continue
            how = f"reference level {ref_level}"
            code, title = record.get("code"), record.get("title")
            level = _native_level(destination, ref_level)
        else:
            if src.get("code") != record.get("code"):
                continue
            if "level" in src and src["level"] != record.get("level"):
                continue  # e.g. a certificate mapped for one level only
            how = f"{origin} {src.get('code')} → {destination} {dst.get('code')}"
            code, title = dst.get("code"), dst.get("title") or record.get("title")
            level = dst.get("level") or (_native_level(destination, ref_level) if ref_level else None)
        hours = _dec(record.get("hours"))
        fixed = _dec(dst.get("credits"))
        if fixed is not None:
            credits, rule = fixed, "credits fixed by the mapping"
        elif hours is not None and hpc_dest:
            credits = _thousandths(hours / hpc_dest)
            rule = f"{hours} h ÷ {hpc_dest} h per credit at {destination}"
        elif _dec(record.get("credits")) is not None and hpc_origin and hpc_dest:
            origin_credits = _dec(record.get("credits"))
            hours = origin_credits * hpc_origin
            credits = _thousandths(hours / hpc_dest)
            rule = f"{origin_credits} credits × {hpc_origin} h ({origin}) ÷ {hpc_dest} h per credit ({destination})"
        else:
            continue  # nothing to compute credits from under this mapping
        explanation = (f"agreement {agreement.get('agreement')} v{agreement.get('version')} mapping {index}: "
                       f"{how}; {rule}; {'automatic' if automatic else 'reviewed'}")
        return Recognition(code=code, title=title, credits=credits, hours=hours, level=level,
                           reference_level=ref_level, automatic=automatic, mapping_index=index,
                           explanation=explanation)
    return None
