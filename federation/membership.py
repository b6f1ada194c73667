"""The federation's signed member list (docs/federation.md §2).

A membership document lists the members, its `version`, the hash of the previous version (`previous`, null for
the genesis) and the `threshold` of member signatures it needs. Its hash is `sha256(JCS(document without
"proof"))` in hex. It is valid when it carries `eddsa-jcs-2022` proofs (a proof set) from at least `threshold`
distinct members of the previous version (for the genesis: of itself), each by a key listed in that member's
DID document. A change may not lower the bar: the proofs needed are max(previous threshold, own threshold).

Admitting a member needs `admission` (one object or a list) naming the candidate, its DID document, and its
conformance report signed by that DID with every result passed; removing one needs `removal` naming it with a
reason. Pure checks (`check_membership`, `check_admission`, `check_removal`) are separate from the store
(`held_membership`, `install_membership`, proposals), which only flushes (commit at the boundary).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlmodel import Session, select

from crypto.dataintegrity import verify as di_verify
from crypto.did import resolve_verification_method
from crypto.errors import CanonicalizationError
from crypto.jcs import canonicalize
from federation.errors import MembershipRefused
from node.models import MembershipProposal, MembershipVersion, utcnow

__all__ = [
    "FOUNDING_MEMBERS_FILE",
    "MEMBERSHIP_TYPE",
    "ContextPin",
    "Member",
    "MembershipCheck",
    "MembershipDocument",
    "Refusal",
    "check_admission",
    "check_membership",
    "check_removal",
    "founding_document",
    "held_document",
    "held_membership",
    "held_stamp",
    "install_membership",
    "membership_hash",
    "merge_proofs",
    "next_version",
    "parse_document",
    "proofs_of",
    "propose_membership",
    "sign_membership",
    "unsecured",
]

MEMBERSHIP_TYPE = "FederationMembership"
FOUNDING_MEMBERS_FILE = Path(__file__).resolve().parent.parent / "config" / "federation" / "founding-members.json"

DidResolver = Callable[["Member"], dict | None]


class Member(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    node_id: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    name_zh: str = ""
    name_en: str = ""
    did: str = Field(max_length=255, pattern=r"^did:web:")  # peer_did_document.did
    base_url: str = Field(pattern=r"^https?://")
    roles: list[str] = Field(default_factory=list)


class ContextPin(BaseModel):
    """The federation's JSON-LD context, pinned: its URL and the digestSRI of its exact bytes
    (docs/credentials.md). Every member bundles those bytes; a member whose bundle differs refuses to process it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^https://", max_length=200)
    digestSRI: str = Field(pattern=r"^sha(256|384|512)-[A-Za-z0-9+/]+={0,2}$", max_length=120)


class MembershipDocument(BaseModel):
    # frozen: `held_document` hands the same parsed instance to every caller of a process
    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)

    type: str
    federation: str = ""
    context: ContextPin | None = None
    version: int = Field(ge=1)
    previous: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    threshold: int = Field(ge=1)
    members: tuple[Member, ...] = Field(min_length=1)

    def member(self, node_id: str) -> Member | None:
        return next((m for m in self.members if m.node_id == node_id), None)

    def member_by_did(self, did: str) -> Member | None:
        return next((m for m in self.members if m.did == did), None)


@dataclass(frozen=True)
class Refusal:
    code: str
    message: str

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message}


@dataclass
class MembershipCheck:
    hash: str
    version: int | None
    needed: int = 0
    signers: list[str] = field(default_factory=list)  # node ids of voters with a valid proof
    refusals: list[Refusal] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.refusals

    def to_dict(self) -> dict:
        return {"hash": self.hash, "version": self.version, "ok": self.ok, "needed": self.needed,
                "signers": self.signers, "refusals": [r.to_dict() for r in self.refusals]}

    def raise_if_refused(self) -> None:
        if self.refusals:
            raise MembershipRefused([r.to_dict() for r in self.refusals])


# -- the document ------------------------------------------------------------------------------------


def unsecured(document: dict) -> dict:
    return {k: v for k, v in document.items() if k != "proof"}


def proofs_of(document: dict) -> list[dict]:
    proof = document.get("proof")
    if proof is None:
        return []
    return list(proof) if isinstance(proof, list) else [proof]


def membership_hash(document: dict) -> str:
    """`sha256(JCS(document without "proof"))`, hex. A document RFC 8785 cannot write (an integer past 2**53,
    NaN, an infinity) is refused: 409 invalid_membership."""
    try:
        return hashlib.sha256(canonicalize(unsecured(document))).hexdigest()
    except CanonicalizationError as exc:
        raise MembershipRefused([{"code": "invalid_membership",
                                  "message": f"the document cannot be canonicalised (RFC 8785): {exc}"}]) from None


def merge_proofs(document: dict, *others: dict) -> dict:
    """The document with the union of its proofs and those of `others` (same hash), as a proof set."""
    proofs = proofs_of(document)
    seen = {p.get("proofValue") for p in proofs if isinstance(p, dict)}
    for other in others:
        if membership_hash(other) != membership_hash(document):
            raise MembershipRefused([{"code": "invalid_membership",
                                      "message": "cannot merge proofs of documents with different hashes"}])
        for proof in proofs_of(other):
            if isinstance(proof, dict) and proof.get("proofValue") not in seen:
                proofs.append(proof)
                seen.add(proof.get("proofValue"))
    merged = unsecured(document)
    if proofs:
        merged["proof"] = proofs
    return merged


def parse_document(document: dict) -> MembershipDocument:
    return MembershipDocument.model_validate(unsecured(document))


def founding_document(path: Path | None = None) -> dict:
    """The unsigned genesis shipped in `config/federation/founding-members.json`."""
    return json.loads((path or FOUNDING_MEMBERS_FILE).read_text(encoding="utf-8"))


def next_version(held: dict, *, members: list[dict] | None = None, threshold: int | None = None,
                 admission: dict | list[dict] | None = None, removal: dict | list[dict] | None = None,
                 **extra: Any) -> dict:
    """An unsigned proposal chained to `held`: version + 1, `previous` = its hash."""
    base = unsecured(held)
    doc = {k: v for k, v in base.items() if k not in ("admission", "removal")}
    doc.update(version=base["version"] + 1, previous=membership_hash(held))
    if members is not None:
        doc["members"] = members
    if threshold is not None:
        doc["threshold"] = threshold
    if admission is not None:
        doc["admission"] = admission
    if removal is not None:
        doc["removal"] = removal
    doc.update(extra)
    return doc


def sign_membership(document: dict, identity: Any) -> dict:
    """Add `identity`'s proof to the document's proof set (each proof covers the unsecured document)."""
    signed = identity.sign(unsecured(document))
    return merge_proofs(document, signed)


# -- checks ------------------------------------------------------------------------------------------


def _key_resolver(did_documents: dict[str, dict]) -> Callable[[str], Any]:
    def resolve(vm_id: str) -> Any:
        doc = did_documents.get(vm_id.split("#", 1)[0])
        if doc is None:
            return None
        try:
            return resolve_verification_method(doc, vm_id)
        except (KeyError, ValueError, LookupError):
            return None

    return resolve


def _proof_results(document: dict, did_documents: dict[str, dict]) -> list[tuple[str, bool, str]]:
    """(verification method, ok, reason) for every proof of the document's proof set (each proof covers the
    unsecured document on its own)."""
    if not proofs_of(document):
        return []
    outcome = di_verify(document, _key_resolver(did_documents))
    return [(p.verification_method or "", p.ok, p.reason) for p in outcome.proofs]


def check_admission(admissions: Any, member: Member) -> list[Refusal]:
    """The candidate `member` is admitted by an `admission` entry carrying its DID document and its
    conformance report, signed (eddsa-jcs-2022) by a key of that DID document, with every result passed."""
    entries = admissions if isinstance(admissions, list) else [admissions] if admissions else []
    entry = next((a for a in entries if isinstance(a, dict) and a.get("node_id") == member.node_id), None)
    if entry is None:
        return [Refusal("admission_required", f"{member.node_id} is added without an admission")]
    bad = []
    did_doc = entry.get("didDocument")
    report = entry.get("conformanceReport")
    if not isinstance(did_doc, dict) or did_doc.get("id") != member.did:
        bad.append(f"admission of {member.node_id} lacks the DID document of {member.did}")
    if not isinstance(report, dict):
        bad.append(f"admission of {member.node_id} lacks a conformance report")
    else:
        if report.get("type") != "ConformanceReport":
            bad.append("the report's type is not ConformanceReport")
        node = report.get("node")
        if not isinstance(node, dict) or node.get("did") != member.did:
            bad.append(f"the report is about another node than {member.did}")
        suite = report.get("suite")
        if not isinstance(suite, dict) or not suite.get("name") or not suite.get("version"):
            bad.append("the report does not name its suite and version")
        results = report.get("results")
        if not isinstance(results, list) or not results:
            bad.append("the report has no results")
        else:
            failed = [r.get("test") if isinstance(r, dict) else r for r in results
                      if not isinstance(r, dict) or r.get("outcome") != "passed"]
            if failed:
                bad.append(f"the report has results not passed: {failed[:5]}")
        if report.get("passed") is not True:
            bad.append("the report is not marked passed")
        proofs = proofs_of(report)
        if not proofs:
            bad.append("the report is not signed")
        elif isinstance(did_doc, dict):
            for vm, ok, reason in _proof_results(report, {member.did: did_doc}):
                if not vm.startswith(member.did + "#"):
                    bad.append(f"the report is signed by {vm}, not by the candidate")
                elif not ok:
                    bad.append(f"the report's proof does not verify: {reason or 'bad proof'}")
    return [Refusal("admission_invalid", m) for m in bad]


def check_removal(removals: Any, member: Member) -> list[Refusal]:
    """A member leaves only when the version names it in `removal` with a reason."""
    entries = removals if isinstance(removals, list) else [removals] if removals else []
    entry = next((r for r in entries if isinstance(r, dict) and r.get("node_id") == member.node_id), None)
    if entry is None or not str(entry.get("reason", "")).strip():
        return [Refusal("removal_required", f"{member.node_id} is dropped without a removal entry and reason")]
    return []


def check_membership(document: dict, *, held: dict | None, resolve_did: DidResolver) -> MembershipCheck:
    """Every reason `document` cannot follow `held` (None: it must be a genesis)."""
    try:
        digest = membership_hash(document)
    except Exception as exc:  # noqa: BLE001
        return MembershipCheck("", None, refusals=[Refusal("invalid_membership", f"cannot hash: {exc}")])
    try:
        doc = parse_document(document)
    except ValidationError as exc:
        errors = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        return MembershipCheck(digest, None, refusals=[Refusal("invalid_membership", errors)])
    check = MembershipCheck(digest, doc.version)
    refuse = check.refusals.append
    if doc.type != MEMBERSHIP_TYPE:
        refuse(Refusal("invalid_membership", f"type must be {MEMBERSHIP_TYPE}"))
    ids = [m.node_id for m in doc.members]
    dids = [m.did for m in doc.members]
    if len(set(ids)) != len(ids) or len(set(dids)) != len(dids):
        refuse(Refusal("invalid_membership", "members repeat a node id or a DID"))
    if doc.threshold > len(doc.members):
        refuse(Refusal("invalid_membership", "threshold exceeds the number of members"))
    if doc.threshold * 2 <= len(doc.members):
        refuse(Refusal("threshold_too_low", "threshold must be more than half of the members"))

    prev: MembershipDocument | None = None
    if held is None:
        if doc.previous is not None or doc.version != 1:
            refuse(Refusal("not_chained", "no membership is held: only a genesis (version 1, previous null)"))
    else:
        prev = parse_document(held)
        if doc.previous != membership_hash(held):
            refuse(Refusal("not_chained", f"previous must be the held version's hash {membership_hash(held)}"))
        if doc.version != prev.version + 1:
            refuse(Refusal("wrong_version", f"version must be {prev.version + 1}"))

    voters = prev.members if prev is not None else doc.members
    check.needed = max(doc.threshold, prev.threshold if prev is not None else 0)
    by_did = {m.did: m for m in voters}
    did_documents: dict[str, dict] = {}
    for proof in proofs_of(document):
        if not isinstance(proof, dict):
            continue
        did = str(proof.get("verificationMethod", "")).split("#", 1)[0]
        if did in by_did and did not in did_documents:
            fetched = resolve_did(by_did[did])
            if fetched is not None:
                did_documents[did] = fetched
    signers: set[str] = set()
    for vm, ok, _reason in _proof_results(document, did_documents):
        voter = by_did.get(vm.split("#", 1)[0])
        if ok and voter is not None:
            signers.add(voter.node_id)
    check.signers = sorted(signers)
    if len(signers) < check.needed:
        refuse(Refusal("below_threshold",
                       f"{len(signers)} valid member proofs ({', '.join(check.signers) or 'none'}); "
                       f"{check.needed} needed from the {'previous' if prev else 'founding'} members"))

    if prev is not None:
        old = {(m.node_id, m.did) for m in prev.members}
        new = {(m.node_id, m.did) for m in doc.members}
        extra = unsecured(document)
        for member in doc.members:
            if (member.node_id, member.did) not in old:
                check.refusals.extend(check_admission(extra.get("admission"), member))
        for member in prev.members:
            if (member.node_id, member.did) not in new:
                check.refusals.extend(check_removal(extra.get("removal"), member))
    return check


# -- the store ---------------------------------------------------------------------------------------


def held_membership(session: Session) -> MembershipVersion | None:
    """The newest installed (valid) membership version, or None."""
    return session.exec(select(MembershipVersion).order_by(MembershipVersion.version.desc()).limit(1)).first()


def held_stamp(session: Session) -> tuple[int, str] | None:
    """(version, hash) of the held membership, without loading its document; None when none is held."""
    row = session.execute(sa.select(MembershipVersion.version, MembershipVersion.hash)
                          .order_by(MembershipVersion.version.desc()).limit(1)).first()
    return (row[0], row[1]) if row is not None else None


# Parsed documents by hash. The hash covers every field `parse_document` reads (all but the proofs), so a parsed
# document is the same in every node, process and session that holds that hash: what is cached here can never be
# stale. A process holds one or two versions at a time; the bound only keeps a long-lived process small.
_PARSED: dict[str, MembershipDocument] = {}
_PARSED_MAX = 16


def held_document(session: Session) -> MembershipDocument | None:
    """The held membership, parsed. One small query (version and hash); the document is loaded and validated
    only the first time this process sees that hash (docs/performance.md, "Peer requests")."""
    stamp = held_stamp(session)
    if stamp is None:
        return None
    version, digest = stamp
    doc = _PARSED.get(digest)
    if doc is None:
        document = session.execute(sa.select(MembershipVersion.document)
                                   .where(MembershipVersion.version == version)).scalar_one()
        doc = parse_document(document)
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[digest] = doc
    return doc


def install_membership(session: Session, document: dict, *, resolve_did: DidResolver) -> tuple[MembershipVersion, bool]:
    """Validate `document` against the held version and install it. Returns (row, newly installed)."""
    held = held_membership(session)
    if held is not None and held.hash == membership_hash(document):
        return held, False
    check_membership(document, held=held.document if held else None, resolve_did=resolve_did).raise_if_refused()
    doc = copy.deepcopy(document)
    row = MembershipVersion(version=doc["version"], hash=membership_hash(doc), document=doc, accepted_at=utcnow())
    session.add(row)
    session.execute(sa.delete(MembershipProposal).where(MembershipProposal.version <= row.version))
    session.flush()
    return row, True


def propose_membership(session: Session, document: dict) -> MembershipProposal:
    """Keep a proposed next version (merging proofs with an earlier copy of the same hash). Refuses a
    proposal that is malformed or not chained to the held version; proofs are checked at install."""
    held = held_membership(session)
    try:
        doc = parse_document(document)
    except ValidationError as exc:
        raise MembershipRefused([{"code": "invalid_membership", "message": str(exc.errors()[0]["msg"])}]) from None
    if held is None:
        if doc.version != 1 or doc.previous is not None:
            raise MembershipRefused([{"code": "not_chained", "message": "no membership held: propose a genesis"}])
    else:
        if doc.previous != held.hash:
            raise MembershipRefused([{"code": "not_chained", "message": f"previous must be {held.hash}"}])
        if doc.version != held.version + 1:
            raise MembershipRefused([{"code": "wrong_version", "message": f"version must be {held.version + 1}"}])
    digest = membership_hash(document)
    row = session.get(MembershipProposal, digest)
    if row is None:
        row = MembershipProposal(hash=digest, version=doc.version, document=merge_proofs(document))
        session.add(row)
    else:
        row.document = merge_proofs(row.document, document)
        row.updated_at = utcnow()
        session.add(row)
    session.flush()
    return row
