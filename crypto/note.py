"""C2SP signed notes (signed-note.md), tlog checkpoints (tlog-checkpoint.md) and Ed25519 witness cosignatures
(tlog-cosignature.md).

* A note is UTF-8 text ending in ``\\n``, a blank line, then signature lines ``— <name> <base64(keyid4 || sig)>``.
* Ed25519 note key (type 0x01): key ID = SHA-256(name || 0x0A || 0x01 || pub)[:4]; vkey =
  ``<name>+<hex key ID>+<base64(0x01 || pub)>``; the signature is over the text bytes.
* Cosignature key (type 0x04, ``cosignature/v1``): key ID = SHA-256(name || 0x0A || 0x04 || pub)[:4]; signed
  message = ``"cosignature/v1\\ntime <ts>\\n" + checkpoint text``; the line carries keyid || ts (8 bytes BE) || sig.
* ``verify_note`` ignores signatures by unknown keys, fails on a bad signature from a known key, and needs at
  least one known valid signature. Verifiers of type 0x04 check cosignatures within the same call.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from crypto.errors import KeyFormatError, NoteError
from crypto.keys import Ed25519Key, PublicKey

__all__ = [
    "ALG_COSIGNATURE_V1",
    "ALG_ED25519",
    "Checkpoint",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "VerifiedNote",
    "add_signatures",
    "cosign",
    "cosignature_message",
    "format_checkpoint",
    "key_id",
    "parse_checkpoint",
    "sign_note",
    "split_note",
    "verify_cosignature",
    "verify_note",
]

ALG_ED25519 = 0x01
ALG_COSIGNATURE_V1 = 0x04
_DASH = "\u2014 "
_MAX_SIGNATURES = 100


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name or any(c.isspace() for c in name) or "+" in name:
        raise NoteError(f"invalid key name {name!r} (non-empty, no spaces or '+')")


def key_id(name: str, alg: int, public: bytes) -> bytes:
    """The 4-byte key ID: SHA-256(name || 0x0A || alg || public key)[:4]."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([alg]) + bytes(public)).digest()[:4]


def cosignature_message(checkpoint_text: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {int(timestamp)}\n".encode() + checkpoint_text.encode("utf-8")


@dataclass(frozen=True)
class NoteSigner:
    """Signs notes (and cosigns checkpoints) as ``name`` with an Ed25519 key."""

    name: str
    key: Ed25519Key = field(repr=False)

    def __post_init__(self) -> None:
        _check_name(self.name)

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, ALG_ED25519, self.key.public_bytes())

    @property
    def cosignature_key_id(self) -> bytes:
        return key_id(self.name, ALG_COSIGNATURE_V1, self.key.public_bytes())

    def verifier_key(self) -> str:
        """The vkey ``name+hex keyid+base64(0x01||pub)``."""
        return _vkey(self.name, ALG_ED25519, self.key.public_bytes())

    def cosigner_verifier_key(self) -> str:
        return _vkey(self.name, ALG_COSIGNATURE_V1, self.key.public_bytes())

    def verifier(self) -> NoteVerifier:
        return NoteVerifier(self.name, self.key.public_key, ALG_ED25519)

    def cosignature_verifier(self) -> NoteVerifier:
        return NoteVerifier(self.name, self.key.public_key, ALG_COSIGNATURE_V1)

    def signature_line(self, text: str) -> str:
        sig = self.key.sign(text.encode("utf-8"))
        return f"{_DASH}{self.name} {base64.b64encode(self.key_id + sig).decode()}\n"


def _vkey(name: str, alg: int, public: bytes) -> str:
    return f"{name}+{key_id(name, alg, public).hex()}+{base64.b64encode(bytes([alg]) + public).decode()}"


@dataclass(frozen=True)
class NoteVerifier:
    name: str
    public_key: PublicKey
    alg: int = ALG_ED25519

    def __post_init__(self) -> None:
        _check_name(self.name)
        if self.alg not in (ALG_ED25519, ALG_COSIGNATURE_V1):
            raise NoteError(f"unsupported key type 0x{self.alg:02x}")

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.alg, self.public_key.raw)

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        """Parse ``name+hexid+base64(type||pub)`` (types 0x01 Ed25519 and 0x04 cosignature/v1)."""
        try:
            name, hexid, b64 = vkey.split("+", 2)
            kid = bytes.fromhex(hexid)
            raw = base64.b64decode(b64, validate=True)
        except (ValueError, AttributeError, binascii.Error) as exc:
            raise NoteError(f"malformed verifier key: {exc}") from exc
        if len(kid) != 4 or len(raw) != 33:
            raise NoteError("malformed verifier key: wrong key id or key length")
        try:
            verifier = cls(name, PublicKey(raw[1:]), raw[0])
        except KeyFormatError as exc:
            raise NoteError(str(exc)) from exc
        if verifier.key_id != kid:
            raise NoteError("verifier key id does not match name and key")
        return verifier

    def verifier_key(self) -> str:
        return _vkey(self.name, self.alg, self.public_key.raw)


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: bytes
    signature: bytes  # for cosignatures: timestamp (8 bytes) || signature
    timestamp: int | None = None  # cosignatures only

    def line(self) -> str:
        return f"{_DASH}{self.name} {base64.b64encode(self.key_id + self.signature).decode()}\n"


@dataclass(frozen=True)
class VerifiedNote:
    text: str
    signatures: dict[str, NoteSignature]  # verified signatures by signer name
    unverified: list[NoteSignature]  # signatures by keys not in the verifier list


def split_note(note: str) -> tuple[str, list[NoteSignature]]:
    """The text and the parsed (not verified) signature lines of a note."""
    if not isinstance(note, str):
        raise NoteError("a note is a str")
    if not note.endswith("\n"):
        raise NoteError("a note ends with a newline")
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("no signature block (blank line) in the note")
    text, block = note[: split + 1], note[split + 2:]
    if "\r" in note:
        raise NoteError("carriage returns are not allowed in notes")
    lines = block.split("\n")[:-1]
    if not lines:
        raise NoteError("the note has no signatures")
    if len(lines) > _MAX_SIGNATURES:
        raise NoteError("too many signatures")
    sigs = []
    for line in lines:
        if not line.startswith(_DASH):
            raise NoteError(f"malformed signature line {line!r}")
        name, sep, b64 = line[len(_DASH):].partition(" ")
        if not sep or not name or " " in b64:
            raise NoteError(f"malformed signature line {line!r}")
        try:
            raw = base64.b64decode(b64, validate=True)
        except binascii.Error as exc:
            raise NoteError(f"signature is not base64: {line!r}") from exc
        if len(raw) < 5:
            raise NoteError(f"signature too short: {line!r}")
        sigs.append(NoteSignature(name, raw[:4], raw[4:]))
    return text, sigs


def _check_text(text: str) -> None:
    if not isinstance(text, str) or not text.endswith("\n") or text == "\n":
        raise NoteError("note text must be non-empty and end with a newline")
    if text.endswith("\n\n") or "\r" in text:
        raise NoteError("note text must not end with a blank line or contain carriage returns")


def sign_note(text: str, signers: Iterable[NoteSigner]) -> str:
    """``text`` + blank line + one signature line per signer."""
    _check_text(text)
    signers = list(signers)
    if not signers:
        raise NoteError("at least one signer is needed")
    return text + "\n" + "".join(s.signature_line(text) for s in signers)


def add_signatures(note: str, lines: Iterable[str]) -> str:
    """Append signature lines (e.g. cosignatures) to a signed note, skipping exact duplicates."""
    text, sigs = split_note(note)
    existing = {s.line() for s in sigs}
    out = note
    for line in lines:
        line = line if line.endswith("\n") else line + "\n"
        split_note("x\n\n" + line)  # validates the line
        if line not in existing:
            out += line
            existing.add(line)
    return out


def _verify_sig(text: str, sig: NoteSignature, verifier: NoteVerifier) -> NoteSignature:
    if verifier.alg == ALG_COSIGNATURE_V1:
        if len(sig.signature) != 72:
            raise NoteError(f"cosignature by {sig.name} has the wrong length")
        ts = int.from_bytes(sig.signature[:8], "big")
        ok = verifier.public_key.verify(sig.signature[8:], cosignature_message(text, ts))
        result = NoteSignature(sig.name, sig.key_id, sig.signature, ts)
    else:
        ok = verifier.public_key.verify(sig.signature, text.encode("utf-8"))
        result = sig
    if not ok:
        raise NoteError(f"invalid signature by {sig.name}")
    return result


def verify_note(note: str, verifiers: Sequence[NoteVerifier]) -> VerifiedNote:
    """Verify a signed note; raises NoteError if malformed, if a known key's signature is bad, or if no known key
    signed it. Signatures by unknown keys are returned in ``unverified``."""
    text, sigs = split_note(note)
    known = {(v.name, v.key_id): v for v in verifiers}
    verified: dict[str, NoteSignature] = {}
    unverified = []
    for sig in sigs:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            unverified.append(sig)
            continue
        verified[sig.name if verifier.alg == ALG_ED25519 else f"{sig.name}#cosignature"] = _verify_sig(
            text, sig, verifier)
    if not verified:
        raise NoteError("no signature from a known key")
    return VerifiedNote(text, verified, unverified)


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        return format_checkpoint(self.origin, self.size, self.root_hash, self.extensions)


def format_checkpoint(origin: str, size: int, root_hash: bytes, extensions: Sequence[str] = ()) -> str:
    """The checkpoint body: origin, decimal size, base64 root hash, optional extension lines, each + ``\\n``."""
    if not isinstance(origin, str) or not origin or "\n" in origin:
        raise NoteError("the origin is one non-empty line")
    if not isinstance(size, int) or size < 0:
        raise NoteError("the tree size is a non-negative integer")
    if not isinstance(root_hash, (bytes, bytearray)) or len(root_hash) != 32:
        raise NoteError("the root hash is 32 bytes")
    for ext in extensions:
        if not ext or "\n" in ext:
            raise NoteError("extension lines are non-empty single lines")
    lines = [origin, str(size), base64.b64encode(bytes(root_hash)).decode(), *extensions]
    return "\n".join(lines) + "\n"


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint body (the text of a verified note)."""
    if not isinstance(text, str) or not text.endswith("\n"):
        raise NoteError("a checkpoint ends with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise NoteError("a checkpoint has at least origin, size and root hash lines")
    origin, size_s, root_s, *ext = lines
    if not origin:
        raise NoteError("empty origin")
    if not size_s.isdigit() or not size_s.isascii() or (len(size_s) > 1 and size_s[0] == "0"):
        raise NoteError(f"bad tree size {size_s!r}")
    try:
        root = base64.b64decode(root_s, validate=True)
    except binascii.Error as exc:
        raise NoteError("root hash is not base64") from exc
    if len(root) != 32:
        raise NoteError("root hash is not 32 bytes")
    if any(not e for e in ext):
        raise NoteError("empty extension line")
    return Checkpoint(origin, int(size_s), root, tuple(ext))


def cosign(checkpoint_text: str, signer: NoteSigner, timestamp: int) -> str:
    """A ``cosignature/v1`` signature line for a checkpoint body (the note text, without signatures)."""
    parse_checkpoint(checkpoint_text)
    if not isinstance(timestamp, int) or not 0 <= timestamp < 2**63:
        raise NoteError("timestamp is seconds since the epoch")
    sig = signer.key.sign(cosignature_message(checkpoint_text, timestamp))
    return NoteSignature(signer.name, signer.cosignature_key_id, timestamp.to_bytes(8, "big") + sig, timestamp).line()


def verify_cosignature(checkpoint_text: str, line: str, verifier: NoteVerifier) -> int:
    """Verify one cosignature line against a checkpoint body; returns its timestamp. Raises NoteError."""
    if verifier.alg != ALG_COSIGNATURE_V1:
        verifier = NoteVerifier(verifier.name, verifier.public_key, ALG_COSIGNATURE_V1)
    _, sigs = split_note("x\n\n" + (line if line.endswith("\n") else line + "\n"))
    sig = sigs[0]
    if sig.name != verifier.name or sig.key_id != verifier.key_id:
        raise NoteError("the cosignature is not by this witness key")
    result = _verify_sig(checkpoint_text, sig, verifier)
    assert result.timestamp is not None
    return result.timestamp
