"""The exception tree of the `crypto` package.

Every error raised on purpose by this package derives from :class:`CryptoError`; most also derive from
``ValueError`` (bad input) so callers that only know the standard library still catch them::

    CryptoError
    ├── CanonicalizationError (ValueError)   RFC 8785 input the canonicaliser refuses; strict JSON parse errors
    ├── KeyFormatError (ValueError)          bad multibase / multikey / did:key / seed / vkey
    ├── DidError (ValueError)                malformed did:web URL or DID document
    │   └── UnknownVerificationMethod (LookupError)   id not in the document or not authorised for the purpose
    ├── ProofError (ValueError)              a Data Integrity proof cannot be *created* (bad options, bad previousProof)
    ├── JsonLdError (ValueError)             JSON-LD that cannot be processed: unknown or unpinned context, invalid
    │                                        JSON-LD, safe-mode violations (``.problems``), canonicalization limits
    ├── HttpSignatureError                   RFC 9421 / 9530 verification failures; each has a stable ``.code``:
    │   ├── UnsignedMessage          "unsigned"            no Signature / Signature-Input
    │   ├── MalformedSignature       "malformed_signature" unparsable fields or parameters, wrong alg
    │   ├── UnknownKey               "unknown_key"         resolver failed or returned nothing
    │   ├── BadSignature             "bad_signature"       the Ed25519 signature does not verify
    │   ├── SignatureExpired         "expired"             expired, created in the future, window too long
    │   ├── DigestMismatch           "digest_mismatch"     Content-Digest missing or wrong
    │   ├── MissingComponent         "missing_component"   a required component is not covered
    │   ├── WrongTag                 "wrong_tag"           no signature carries the required tag
    │   └── RequestMismatch          "request_mismatch"    a response is not bound to the expected request nonce
    ├── MerkleError (ValueError)             bad RFC 9162 proof or arguments
    ├── LeafError (ValueError)               a ledger leaf is malformed or its opening does not match it
    ├── NoteError (ValueError)               malformed or unverifiable C2SP signed note / checkpoint / cosignature
    └── StatusListError (ValueError)         malformed bitstring status list or index out of range

Data Integrity *verification* never raises for a bad proof: it returns a result with a stable code per proof
(see ``crypto.dataintegrity``).
"""

from __future__ import annotations

__all__ = [
    "BadSignature",
    "CanonicalizationError",
    "CryptoError",
    "DidError",
    "DigestMismatch",
    "HttpSignatureError",
    "JsonLdError",
    "KeyFormatError",
    "LeafError",
    "MalformedSignature",
    "MerkleError",
    "MissingComponent",
    "NoteError",
    "ProofError",
    "RequestMismatch",
    "SignatureExpired",
    "StatusListError",
    "UnknownKey",
    "UnknownVerificationMethod",
    "UnsignedMessage",
    "WrongTag",
]


class CryptoError(Exception):
    """Base class of every error this package raises on purpose."""


class CanonicalizationError(CryptoError, ValueError):
    """The value cannot be represented in RFC 8785 JSON (NaN, huge int, non-str key, bad Unicode, dup key...)."""


class KeyFormatError(CryptoError, ValueError):
    """A key, multibase string, did:key or vkey is malformed."""


class DidError(CryptoError, ValueError):
    """A DID or DID document is malformed."""


class UnknownVerificationMethod(DidError, LookupError):
    """The verification method is not in the DID document or not authorised for the requested purpose."""


class ProofError(CryptoError, ValueError):
    """A Data Integrity proof cannot be created with these arguments."""


class HttpSignatureError(CryptoError):
    """An HTTP message signature or content digest failed verification. ``code`` is stable."""

    code = "http_signature_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class UnsignedMessage(HttpSignatureError):
    code = "unsigned"


class MalformedSignature(HttpSignatureError):
    code = "malformed_signature"


class UnknownKey(HttpSignatureError):
    code = "unknown_key"


class BadSignature(HttpSignatureError):
    code = "bad_signature"


class SignatureExpired(HttpSignatureError):
    code = "expired"


class DigestMismatch(HttpSignatureError):
    code = "digest_mismatch"


class MissingComponent(HttpSignatureError):
    code = "missing_component"


class WrongTag(HttpSignatureError):
    code = "wrong_tag"


class RequestMismatch(HttpSignatureError):
    code = "request_mismatch"


class MerkleError(CryptoError, ValueError):
    """An RFC 9162 proof does not verify, or the arguments are out of range."""


class LeafError(CryptoError, ValueError):
    """A ledger leaf is malformed, or the opening presented for it (salt, subject, data) does not match."""


class NoteError(CryptoError, ValueError):
    """A C2SP signed note, checkpoint or cosignature is malformed or does not verify."""


class StatusListError(CryptoError, ValueError):
    """A bitstring status list is malformed, too short, too large, or the index is out of range."""


class JsonLdError(CryptoError, ValueError):
    """JSON-LD that cannot be processed (``crypto.jsonld``): an unknown or unpinned context, invalid JSON-LD, a
    safe-mode violation (every one listed in ``problems``), or a dataset over the canonicalization limits."""

    def __init__(self, message: str, *, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [message])
