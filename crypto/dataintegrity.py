"""W3C Data Integrity proofs with the ``eddsa-jcs-2022`` and ``eddsa-rdfc-2022`` cryptosuites (VC DI EdDSA v1.0,
§3.2–3.3), proof sets and proof chains (VC Data Integrity v1.0, §4.2–4.5).

Hashing (create and verify)::

    proofConfig   = proof options (type, cryptosuite, created, verificationMethod, proofPurpose, id?,
                    previousProof?, …) + "@context": document["@context"] when the document has one
    unsecuredDoc  = document without "proof"; for a proof with previousProof, unsecuredDoc["proof"] is the
                    LIST of the referenced proofs (whole, with proofValue), in previousProof order
    canon(x)      = JCS (RFC 8785) for eddsa-jcs-2022; RDFC-1.0 N-Quads of the JSON-LD (``crypto.jsonld``,
                    bundled contexts only, never the network) for eddsa-rdfc-2022
    hashData      = SHA-256(canon(proofConfig)) || SHA-256(canon(unsecuredDoc))
    proofValue    = "z" + base58btc(Ed25519(hashData))

An ``eddsa-jcs-2022`` proof carries the document's ``@context``; an ``eddsa-rdfc-2022`` proof does not (its
proof configuration takes the document's context while hashing, as in the W3C vectors). On verification, when
the proof carries ``@context``, the document's ``@context`` must start with the same values in the same order
(else ``context_mismatch``) and the unsecured document takes the proof's context.
A proof set (several proofs, no previousProof) is verified proof by proof; every proof must verify.

``verify`` never raises for a bad proof: each proof gets a ``ProofResult`` with ``ok``, a stable ``code`` and a
human ``reason``. Codes: ``ok``, ``no_proof``, ``malformed_proof``, ``unsupported_cryptosuite``,
``purpose_mismatch``, ``context_mismatch``, ``bad_previous_proof``, ``unknown_key``, ``key_revoked``,
``key_expired``, ``jsonld_error`` (RDFC: unknown context, invalid JSON-LD, over the limits),
``signature_invalid``.

Key states (when the resolver returns a ``ResolvedKey``): a key with a ``revoked`` time fails every proof
(``key_revoked``) whatever its ``created`` says — a compromised key can back-date; a rotated-out key (``expires``)
still verifies proofs whose ``created`` is before ``expires`` and fails later ones (``key_expired``).

``sign`` without ``created`` omits ``created`` (it is optional in the spec, and this keeps the function pure and
deterministic); callers normally pass a timestamp.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from crypto.did import ResolvedKey
from crypto.errors import CanonicalizationError, JsonLdError, KeyFormatError, ProofError
from crypto.jcs import canonicalize
from crypto.jsonld import ContextLoader, canonicalize_rdfc, canonicalize_rdfc_small
from crypto.keys import Ed25519Key, PublicKey, b58decode, b58encode

__all__ = [
    "CRYPTOSUITE",
    "CRYPTOSUITES",
    "JCS",
    "RDFC",
    "PROOF_TYPE",
    "KeyResolver",
    "ProofResult",
    "VerificationResult",
    "hash_data",
    "sign",
    "verify",
]

JCS = "eddsa-jcs-2022"
RDFC = "eddsa-rdfc-2022"
CRYPTOSUITE = JCS  # the default
CRYPTOSUITES = (JCS, RDFC)
PROOF_TYPE = "DataIntegrityProof"

KeyResolver = Callable[[str], PublicKey | ResolvedKey | None]


def hash_data(unsecured_document: Mapping[str, Any], proof_config: Mapping[str, Any], *,
              cryptosuite: str = JCS, loader: ContextLoader | None = None,
              canonical_document: str | None = None) -> bytes:
    """SHA-256(canon(proofConfig)) || SHA-256(canon(unsecured document)) — the 64 bytes that are signed.
    canon is JCS for ``eddsa-jcs-2022`` and RDFC-1.0 (with ``loader``'s contexts) for ``eddsa-rdfc-2022``;
    raises CanonicalizationError / JsonLdError. ``canonical_document``: the RDFC-1.0 form of the unsecured
    document when the caller has it already (``crypto.rdfc.canonicalize_embedding``)."""
    sha256 = hashlib.sha256
    if cryptosuite == RDFC:
        if canonical_document is None:
            canonical_document = canonicalize_rdfc(dict(unsecured_document), loader)
        return (sha256(canonicalize_rdfc_small(dict(proof_config), loader).encode()).digest()
                + sha256(canonical_document.encode()).digest())
    if cryptosuite != JCS:
        raise ProofError(f"unsupported cryptosuite {cryptosuite!r}")
    return sha256(canonicalize(proof_config)).digest() + sha256(canonicalize(unsecured_document)).digest()


def _proof_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _previous_ids(previous: Any) -> list[str] | None:
    """previousProof as a list of ids; None if absent; raises ValueError if not a string or list of strings."""
    if previous is None:
        return None
    if isinstance(previous, str):
        return [previous]
    if isinstance(previous, list) and previous and all(isinstance(p, str) for p in previous):
        return list(previous)
    raise ValueError("previousProof must be a string or a non-empty list of strings")


def _matching(all_proofs: list, ids: list[str], exclude: Any = None) -> list[dict]:
    by_id = {}
    for p in all_proofs:
        if isinstance(p, dict) and isinstance(p.get("id"), str) and p is not exclude:
            by_id.setdefault(p["id"], p)
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise LookupError(f"previousProof refers to proof(s) not in the document: {', '.join(missing)}")
    return [by_id[i] for i in ids]


def sign(
    document: dict,
    key: Ed25519Key,
    verification_method: str,
    *,
    proof_purpose: str = "assertionMethod",
    created: str | None = None,
    proof_id: str | None = None,
    previous_proof: str | list[str] | None = None,
    extra: dict | None = None,
    cryptosuite: str = JCS,
    loader: ContextLoader | None = None,
    canonical_document: str | None = None,
) -> dict:
    """A new document with an ``eddsa-jcs-2022`` (default) or ``eddsa-rdfc-2022`` proof added (the input is not
    modified). RDFC needs a JSON-LD document (an ``@context``) whose contexts ``loader`` serves (default: the
    bundled ones). ``canonical_document`` (RDFC only, no ``previous_proof``): the document's RDFC-1.0 form, when
    the caller has composed it from cached parts (``crypto.rdfc``); it is what is signed.

    If the document already has a proof, the result has a proof set (``proof`` becomes a list). With
    ``previous_proof`` the new proof chains to those proof ids, which must exist in the document.
    ``extra`` adds proof options (e.g. ``domain``, ``challenge``, ``expires``); it cannot override the core ones.
    """
    if not isinstance(document, dict):
        raise ProofError("the document must be a JSON object")
    if not isinstance(verification_method, str) or not verification_method:
        raise ProofError("verification_method must be a non-empty string")
    unsecured = dict(document)
    existing = _proof_list(unsecured.pop("proof", None))
    config: dict[str, Any] = {"type": PROOF_TYPE}
    if proof_id is not None:
        if not isinstance(proof_id, str):
            raise ProofError("proof_id must be a string")
        if any(isinstance(p, dict) and p.get("id") == proof_id for p in existing):
            raise ProofError(f"a proof with id {proof_id} already exists")
        config["id"] = proof_id
    if cryptosuite not in CRYPTOSUITES:
        raise ProofError(f"unsupported cryptosuite {cryptosuite!r}")
    if cryptosuite == RDFC and "@context" not in document:
        raise ProofError("eddsa-rdfc-2022 signs JSON-LD: the document has no @context")
    config["cryptosuite"] = cryptosuite
    if created is not None:
        if not isinstance(created, str):
            raise ProofError("created must be an XML Schema dateTime string")
        config["created"] = created
    config["verificationMethod"] = verification_method
    config["proofPurpose"] = proof_purpose
    if extra:
        clash = set(extra) & {"type", "id", "cryptosuite", "created", "verificationMethod", "proofPurpose",
                              "previousProof", "proofValue", "@context"}
        if clash:
            raise ProofError(f"extra cannot set {sorted(clash)}")
        config.update(extra)
    hashed = unsecured
    if previous_proof is not None:
        try:
            ids = _previous_ids(previous_proof)
            matching = _matching(existing, ids or [])
        except (ValueError, LookupError) as exc:
            raise ProofError(str(exc)) from exc
        config["previousProof"] = previous_proof if isinstance(previous_proof, str) else list(previous_proof)
        hashed = dict(unsecured)
        hashed["proof"] = matching
    if canonical_document is not None and (cryptosuite != RDFC or previous_proof is not None):
        raise ProofError("canonical_document is for an eddsa-rdfc-2022 proof without previousProof")
    if "@context" in document:
        config["@context"] = document["@context"]
    try:
        signature = key.sign(hash_data(hashed, config, cryptosuite=cryptosuite, loader=loader,
                                       canonical_document=canonical_document))
    except (CanonicalizationError, JsonLdError) as exc:
        raise ProofError(f"the document cannot be canonicalised: {exc}") from exc
    proof = dict(config)
    if cryptosuite == RDFC:
        proof.pop("@context", None)  # hashed with the document's context, not carried (W3C vectors)
    proof["proofValue"] = "z" + b58encode(signature)
    out = unsecured
    out["proof"] = [*existing, proof] if existing else proof
    return out


@dataclass(frozen=True)
class ProofResult:
    ok: bool
    verification_method: str | None
    code: str
    reason: str
    proof_id: str | None = None
    created: str | None = None
    purpose: str | None = None
    key: ResolvedKey | PublicKey | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class VerificationResult:
    ok: bool
    proofs: list[ProofResult]

    @property
    def reason(self) -> str:
        if not self.proofs:
            return "no proof"
        bad = [p for p in self.proofs if not p.ok]
        return "all proofs verify" if not bad else "; ".join(f"{p.verification_method}: {p.reason}" for p in bad)

    @property
    def verification_methods(self) -> list[str]:
        """The verification methods of the proofs that verified."""
        return [p.verification_method for p in self.proofs if p.ok and p.verification_method]


def _fail(proof: Any, code: str, reason: str, key: Any = None) -> ProofResult:
    p = proof if isinstance(proof, dict) else {}
    vm = p.get("verificationMethod") if isinstance(p.get("verificationMethod"), str) else None
    pid = p.get("id") if isinstance(p.get("id"), str) else None
    created = p.get("created") if isinstance(p.get("created"), str) else None
    purpose = p.get("proofPurpose") if isinstance(p.get("proofPurpose"), str) else None
    return ProofResult(code == "ok", vm, code, reason, pid, created, purpose, key)


def _verify_one(
    document: Mapping[str, Any],
    proof: Any,
    all_proofs: list,
    resolve_key: KeyResolver,
    expected_purpose: str | None,
    loader: ContextLoader | None,
    cryptosuites: Collection[str] = CRYPTOSUITES,
) -> ProofResult:
    if not isinstance(proof, dict):
        return _fail(proof, "malformed_proof", "a proof must be a JSON object")
    if proof.get("type") != PROOF_TYPE:
        return _fail(proof, "unsupported_cryptosuite", f"unsupported proof type {proof.get('type')!r}")
    suite = proof.get("cryptosuite")
    if suite not in CRYPTOSUITES or suite not in cryptosuites:
        return _fail(proof, "unsupported_cryptosuite", f"unsupported cryptosuite {proof.get('cryptosuite')!r}")
    vm = proof.get("verificationMethod")
    if not isinstance(vm, str) or not vm:
        return _fail(proof, "malformed_proof", "verificationMethod must be a non-empty string")
    purpose = proof.get("proofPurpose")
    if not isinstance(purpose, str):
        return _fail(proof, "malformed_proof", "proofPurpose must be a string")
    if expected_purpose is not None and purpose != expected_purpose:
        return _fail(proof, "purpose_mismatch", f"proof purpose is {purpose!r}, expected {expected_purpose!r}")
    created = proof.get("created")
    if created is not None and not isinstance(created, str):
        return _fail(proof, "malformed_proof", "created must be a dateTime string")
    if "id" in proof and not isinstance(proof["id"], str):
        return _fail(proof, "malformed_proof", "proof id must be a string")
    proof_value = proof.get("proofValue")
    if not isinstance(proof_value, str) or not proof_value.startswith("z"):
        return _fail(proof, "malformed_proof", "proofValue must be a base58btc multibase string ('z…')")
    try:
        signature = b58decode(proof_value[1:])
    except KeyFormatError:
        return _fail(proof, "malformed_proof", "proofValue is not valid base58btc")
    if len(signature) != 64:
        return _fail(proof, "malformed_proof", f"proofValue decodes to {len(signature)} bytes, not 64")
    try:
        previous = _previous_ids(proof.get("previousProof"))
    except ValueError as exc:
        return _fail(proof, "bad_previous_proof", str(exc))
    unsecured = {k: v for k, v in document.items() if k != "proof"}
    if previous is not None:
        if isinstance(proof.get("id"), str) and proof["id"] in previous:
            return _fail(proof, "bad_previous_proof", "a proof cannot be its own previousProof")
        try:
            unsecured["proof"] = _matching(all_proofs, previous, exclude=proof)
        except LookupError as exc:
            return _fail(proof, "bad_previous_proof", str(exc))
    options = {k: v for k, v in proof.items() if k != "proofValue"}
    if "@context" in options:
        proof_ctx = options["@context"]
        doc_ctx = document.get("@context")
        pc = proof_ctx if isinstance(proof_ctx, list) else [proof_ctx]
        dc = doc_ctx if isinstance(doc_ctx, list) else ([doc_ctx] if doc_ctx is not None else [])
        if len(pc) > len(dc) or dc[: len(pc)] != pc:
            return _fail(proof, "context_mismatch", "the document's @context does not start with the proof's @context")
        unsecured["@context"] = proof_ctx
    elif suite == RDFC:
        if "@context" not in document:
            return _fail(proof, "jsonld_error", "eddsa-rdfc-2022 needs a JSON-LD document (no @context)")
        options["@context"] = document["@context"]
    try:
        resolved = resolve_key(vm)
    except Exception as exc:  # a failing resolver is a failed proof, not a crash
        return _fail(proof, "unknown_key", f"cannot resolve {vm}: {exc}")
    if resolved is None:
        return _fail(proof, "unknown_key", f"cannot resolve {vm}")
    if isinstance(resolved, ResolvedKey):
        try:
            status = resolved.status_at(created) if created else resolved.status
        except ValueError:
            return _fail(proof, "malformed_proof", "created is not a valid dateTime")
        if status == "revoked" or resolved.revoked is not None:
            return _fail(proof, "key_revoked", f"key {vm} was revoked at {resolved.revoked}", resolved)
        if status == "expired":
            return _fail(proof, "key_expired", f"proof created after key {vm} expired at {resolved.expires}",
                         resolved)
        public = resolved.public_key
    elif isinstance(resolved, PublicKey):
        public = resolved
    elif isinstance(resolved, Ed25519Key):
        public = resolved.public_key
    else:
        return _fail(proof, "unknown_key", f"resolver returned {type(resolved).__name__}, not a key")
    try:
        data = hash_data(unsecured, options, cryptosuite=suite, loader=loader)
    except CanonicalizationError as exc:
        return _fail(proof, "malformed_proof", f"cannot canonicalise: {exc}")
    except JsonLdError as exc:
        return _fail(proof, "jsonld_error", f"cannot canonicalise the JSON-LD: {exc}")
    if not public.verify(signature, data):
        return _fail(proof, "signature_invalid", "the signature does not match the document", resolved)
    return _fail(proof, "ok", "signature verifies", resolved)


def verify(
    document: Mapping[str, Any],
    resolve_key: KeyResolver,
    *,
    expected_purpose: str | None = "assertionMethod",
    loader: ContextLoader | None = None,
    cryptosuites: Collection[str] = CRYPTOSUITES,
) -> VerificationResult:
    """Verify every ``eddsa-jcs-2022`` / ``eddsa-rdfc-2022`` proof of a document (proof, proof set or chain).

    ``resolve_key(verification_method)`` returns a PublicKey or a ResolvedKey (revoked keys and proofs created
    after the key expired then fail), or raises / returns None for an unknown key.
    ``ok`` is true when there is at least one proof and every proof verifies. ``cryptosuites`` narrows the
    accepted suites (a protocol that allows only JCS passes ``(JCS,)``); ``loader`` serves RDFC's contexts.
    """
    if not isinstance(document, Mapping):
        return VerificationResult(False, [ProofResult(False, None, "malformed_proof", "not a JSON object")])
    raw = document.get("proof")
    if raw is None or raw == []:
        return VerificationResult(False, [ProofResult(False, None, "no_proof", "the document has no proof")])
    proofs = _proof_list(raw)
    results = [_verify_one(document, p, proofs, resolve_key, expected_purpose, loader, cryptosuites)
               for p in proofs]
    return VerificationResult(all(r.ok for r in results), results)

