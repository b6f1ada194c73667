"""Pure cryptography for the credit-exchange node: RFC 8785 JCS, Ed25519/Multikey/did:key, did:web documents,
Data Integrity ``eddsa-jcs-2022`` and ``eddsa-rdfc-2022`` proofs (sets and chains), JSON-LD with bundled
contexts (RDFC-1.0, safe-mode expansion), RFC 9421/9530 HTTP signatures, RFC 9162 Merkle trees, the ledger's leaf
format, C2SP signed notes/checkpoints/cosignatures and W3C Bitstring Status Lists.

No network, database or clock access; the only I/O is ``crypto.jsonld`` reading its own bundled context files
(package data) on first use. The exception tree is in ``crypto.errors``.
"""

from crypto.dataintegrity import ProofResult, VerificationResult
from crypto.dataintegrity import sign as di_sign
from crypto.dataintegrity import verify as di_verify
from crypto.did import (
    ResolvedKey,
    VerificationMethodSpec,
    build_did_document,
    did_web_from_url,
    did_web_to_url,
    resolve_verification_method,
)
from crypto.errors import (
    CanonicalizationError,
    CryptoError,
    DidError,
    HttpSignatureError,
    JsonLdError,
    KeyFormatError,
    LeafError,
    MerkleError,
    NoteError,
    ProofError,
    StatusListError,
    UnknownVerificationMethod,
)
from crypto.httpsig import (
    HttpSignatureAuth,
    VerifiedRequest,
    VerifiedResponse,
    content_digest,
    sign_request,
    sign_response,
    verify_content_digest,
    verify_request,
    verify_response,
)
from crypto.jcs import canonicalize, loads_strict
from crypto.jsonld import ContextLoader, canonicalize_rdfc, digest_sri, expand_safe
from crypto.keys import Ed25519Key, PublicKey, did_key, public_key_from_did_key
from crypto.leaf import LEAF_VERSION, OpenedEvent, open_leaf
from crypto.merkle import (
    CompactRange,
    MerkleFrontier,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from crypto.note import (
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    cosign,
    format_checkpoint,
    parse_checkpoint,
    sign_note,
    verify_cosignature,
    verify_note,
)
from crypto.statuslist import StatusList

__all__ = [
    "LEAF_VERSION",
    "CanonicalizationError",
    "Checkpoint",
    "CompactRange",
    "ContextLoader",
    "CryptoError",
    "DidError",
    "Ed25519Key",
    "HttpSignatureAuth",
    "HttpSignatureError",
    "JsonLdError",
    "KeyFormatError",
    "LeafError",
    "MerkleError",
    "MerkleFrontier",
    "NoteError",
    "NoteSigner",
    "NoteVerifier",
    "OpenedEvent",
    "ProofError",
    "ProofResult",
    "PublicKey",
    "ResolvedKey",
    "StatusList",
    "StatusListError",
    "UnknownVerificationMethod",
    "VerificationMethodSpec",
    "VerificationResult",
    "VerifiedRequest",
    "VerifiedResponse",
    "build_did_document",
    "canonicalize",
    "canonicalize_rdfc",
    "consistency_proof",
    "content_digest",
    "cosign",
    "di_sign",
    "di_verify",
    "did_key",
    "did_web_from_url",
    "did_web_to_url",
    "digest_sri",
    "expand_safe",
    "format_checkpoint",
    "inclusion_proof",
    "leaf_hash",
    "loads_strict",
    "node_hash",
    "open_leaf",
    "parse_checkpoint",
    "public_key_from_did_key",
    "resolve_verification_method",
    "root_from_leaf_hashes",
    "sign_note",
    "sign_request",
    "sign_response",
    "verify_consistency",
    "verify_content_digest",
    "verify_cosignature",
    "verify_inclusion",
    "verify_note",
    "verify_request",
    "verify_response",
]
