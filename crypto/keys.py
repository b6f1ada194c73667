"""Ed25519 keys, Multikey encoding (multibase base58btc + multicodec) and did:key.

* public Multikey: ``z`` + base58btc(0xed 0x01 || 32-byte public key)   → starts with ``z6Mk``
* secret Multikey: ``z`` + base58btc(0x80 0x26 || 32-byte seed)         → starts with ``z3u2``
* did:key: ``did:key:<public multikey>``; its verification method is ``did:key:<mk>#<mk>``.

Signing and verification use libsodium through PyNaCl (about twice as fast as ``cryptography`` for both;
Ed25519 is deterministic, so signatures are identical). ``PublicKey.verify`` returns a bool and never raises
for a bad signature.
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass

import nacl.bindings
import nacl.exceptions

from crypto.errors import KeyFormatError

__all__ = [
    "ED25519_PRIV_PREFIX",
    "ED25519_PUB_PREFIX",
    "Ed25519Key",
    "PublicKey",
    "b58decode",
    "b58encode",
    "did_key",
    "did_key_vm",
    "multibase_b58_decode",
    "multibase_b58_encode",
    "public_key_from_did_key",
]

ED25519_PUB_PREFIX = b"\xed\x01"
ED25519_PRIV_PREFIX = b"\x80\x26"

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}


_B58_TRIPLES: str | None = None  # 58**3 three-digit groups, built on first use (~585 KB)


def _triples() -> str:
    global _B58_TRIPLES
    if _B58_TRIPLES is None:
        pairs = [b + c for b in _B58 for c in _B58]
        _B58_TRIPLES = "".join(a + p for a in _B58 for p in pairs)
    return _B58_TRIPLES


def b58encode(data: bytes) -> str:
    """Bitcoin-alphabet base58 (leading zero bytes become '1'); three digits per big-int divmod."""
    zeros = len(data) - len(data.lstrip(b"\0"))
    num = int.from_bytes(data, "big")
    table = _triples()
    out = []
    append = out.append
    while num:
        num, rem = divmod(num, 195112)
        i = rem * 3
        append(table[i:i + 3])
    text = "".join(reversed(out)).lstrip("1")
    return "1" * zeros + text


def b58decode(text: str) -> bytes:
    if not isinstance(text, str):
        raise KeyFormatError("base58 input must be a str")
    num = 0
    for ch in text:
        try:
            num = num * 58 + _B58_INDEX[ch]
        except KeyError:
            raise KeyFormatError(f"invalid base58 character {ch!r}") from None
    zeros = len(text) - len(text.lstrip("1"))
    body = num.to_bytes((num.bit_length() + 7) // 8, "big") if num else b""
    return b"\0" * zeros + body


def multibase_b58_encode(data: bytes) -> str:
    return "z" + b58encode(data)


def multibase_b58_decode(text: str) -> bytes:
    if not isinstance(text, str) or not text.startswith("z") or len(text) < 2:
        raise KeyFormatError("expected a multibase base58btc string starting with 'z'")
    return b58decode(text[1:])


@dataclass(frozen=True, slots=True)
class PublicKey:
    """An Ed25519 public key (32 bytes)."""

    raw: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.raw, (bytes, bytearray)) or len(self.raw) != 32:
            raise KeyFormatError("an Ed25519 public key is 32 bytes")

    @classmethod
    def from_bytes(cls, raw: bytes) -> PublicKey:
        return cls(bytes(raw))

    @classmethod
    def from_multikey(cls, multikey: str) -> PublicKey:
        data = multibase_b58_decode(multikey)
        if not data.startswith(ED25519_PUB_PREFIX) or len(data) != 34:
            raise KeyFormatError("not an Ed25519 public Multikey (expected multicodec 0xed01 + 32 bytes)")
        return cls(data[2:])

    @property
    def multikey(self) -> str:
        return multibase_b58_encode(ED25519_PUB_PREFIX + self.raw)

    def public_bytes(self) -> bytes:
        return self.raw

    def verify(self, signature: bytes, message: bytes) -> bool:
        """True when ``signature`` is a valid Ed25519 signature of ``message``; never raises for bad input."""
        if not isinstance(signature, (bytes, bytearray)) or len(signature) != 64:
            return False
        try:
            nacl.bindings.crypto_sign_open(bytes(signature) + bytes(message), self.raw)
            return True
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError, TypeError):
            return False

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and hmac.compare_digest(self.raw, other.raw)

    def __hash__(self) -> int:
        return hash(self.raw)


class Ed25519Key:
    """An Ed25519 signing key, made from its 32-byte seed."""

    __slots__ = ("_public", "_seed", "_sk")

    def __init__(self, seed: bytes) -> None:
        if not isinstance(seed, (bytes, bytearray)) or len(seed) != 32:
            raise KeyFormatError("an Ed25519 seed (private key) is 32 bytes")
        self._seed = bytes(seed)
        pk, sk = nacl.bindings.crypto_sign_seed_keypair(self._seed)
        self._sk = sk
        self._public = PublicKey(pk)

    @classmethod
    def generate(cls) -> Ed25519Key:
        return cls(os.urandom(32))

    @classmethod
    def from_seed(cls, seed: bytes) -> Ed25519Key:
        return cls(seed)

    @classmethod
    def from_private_bytes(cls, private: bytes) -> Ed25519Key:
        """From the 32-byte seed, or the 64-byte libsodium form seed||public (checked)."""
        if isinstance(private, (bytes, bytearray)) and len(private) == 64:
            key = cls(bytes(private[:32]))
            if key.public_bytes() != bytes(private[32:]):
                raise KeyFormatError("64-byte private key: the public half does not match the seed")
            return key
        return cls(private)

    @classmethod
    def from_multikey(cls, multikey: str) -> Ed25519Key:
        data = multibase_b58_decode(multikey)
        if not data.startswith(ED25519_PRIV_PREFIX) or len(data) != 34:
            raise KeyFormatError("not an Ed25519 secret Multikey (expected multicodec 0x8026 + 32 bytes)")
        return cls(data[2:])

    def private_bytes(self) -> bytes:
        """The 32-byte seed (RFC 8032 private key)."""
        return self._seed

    def public_bytes(self) -> bytes:
        return self._public.raw

    @property
    def public_key(self) -> PublicKey:
        return self._public

    @property
    def public_multikey(self) -> str:
        return self._public.multikey

    @property
    def secret_multikey(self) -> str:
        return multibase_b58_encode(ED25519_PRIV_PREFIX + self._seed)

    @property
    def did_key(self) -> str:
        return did_key(self._public)

    def sign(self, message: bytes) -> bytes:
        return nacl.bindings.crypto_sign(bytes(message), self._sk)[:64]

    def verify(self, signature: bytes, message: bytes) -> bool:
        return self._public.verify(signature, message)

    def __repr__(self) -> str:  # never show the seed
        return f"Ed25519Key(public={self.public_multikey})"


def _as_public(public: PublicKey | Ed25519Key | bytes | str) -> PublicKey:
    if isinstance(public, PublicKey):
        return public
    if isinstance(public, Ed25519Key):
        return public.public_key
    if isinstance(public, str):
        return PublicKey.from_multikey(public)
    return PublicKey.from_bytes(public)


def did_key(public: PublicKey | Ed25519Key | bytes | str) -> str:
    """``did:key:z6Mk…`` for a public key (PublicKey, Ed25519Key, 32 raw bytes or a public Multikey)."""
    return "did:key:" + _as_public(public).multikey


def did_key_vm(public: PublicKey | Ed25519Key | bytes | str) -> str:
    """The verification method id ``did:key:<mk>#<mk>``."""
    mk = _as_public(public).multikey
    return f"did:key:{mk}#{mk}"


def public_key_from_did_key(did: str) -> PublicKey:
    """The public key of ``did:key:<mk>`` or ``did:key:<mk>#<mk>``.

    A fragment must equal the body: ``did:key:<A>#<B>`` with A != B is refused (a known forgery pattern where
    authorisation checks the fragment and verification the body).
    """
    if not isinstance(did, str) or not did.startswith("did:key:"):
        raise KeyFormatError("not a did:key")
    body, sep, fragment = did[len("did:key:"):].partition("#")
    if sep and fragment != body:
        raise KeyFormatError("did:key fragment does not match the key in the DID")
    return PublicKey.from_multikey(body)
