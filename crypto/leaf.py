"""The ledger's leaf format (docs/ledger.md): what an event publishes, and how its private opening is checked.

**Version 2** (current). An event that concerns a person publishes its place in the chain, its time, its kind,
and a salted commitment to everything else::

    {"at": "...", "commitment": "<hex>", "kind": "...", "prev": "<hex>", "seq": 41, "v": 2}

    commitment = SHA-256(COMMITMENT_TAG || salt || JCS(opening body))
    opening body = {"data": {...}, "subject": "<the learner's pseudonym>"}    ("subject" absent: no learner)

with a fresh random 16-byte `salt` per event, kept private by the node. Two events of one learner therefore
share nothing a reader of the public leaves can compare. An event that concerns no person (e.g. a
mutual-recognition agreement in force) publishes its data instead of a commitment::

    {"at": "...", "data": {...}, "kind": "...", "prev": "<hex>", "seq": 7, "v": 2}

**Version 1** (nodes that ran before; still verifiable): the learner appeared as `subject` =
SHA-256(learner_salt || pseudonym) with *one salt per learner* (the same value in every event of that learner),
and `data` was in clear.

An *opening* is what a party entitled to it (the learner, staff, a verifier or a destination the learner
chose) receives to check that an event is about a given pseudonym and says given facts:
``{"salt": "<hex>", "subject": "<pseudonym>", "data": {...}}`` for v2; for a v1 event
``{"salt": "<hex learner salt>", "subject": "<pseudonym>"}`` (the data is in the leaf). `open_leaf` checks it.

Pure: no I/O. Errors: `crypto.errors.LeafError`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from crypto.errors import CanonicalizationError, LeafError
from crypto.jcs import canonicalize, loads_strict

__all__ = [
    "COMMITMENT_TAG",
    "LEAF_VERSION",
    "SALT_BYTES",
    "OpenedEvent",
    "commitment",
    "committed_leaf",
    "open_leaf",
    "opening_body",
    "public_leaf",
    "v1_subject",
]

LEAF_VERSION = 2
SALT_BYTES = 16
COMMITMENT_TAG = b"creditnode/ledger-event/v2\x00"


def opening_body(subject: str | None, data: Mapping[str, Any]) -> bytes:
    """The canonical bytes a v2 commitment hides: the event's data and, if it concerns a learner, their
    pseudonym."""
    body: dict[str, Any] = {"data": data}
    if subject is not None:
        body["subject"] = subject
    return canonicalize(body)


def commitment(salt: bytes, body: bytes) -> str:
    """hex SHA-256(COMMITMENT_TAG || salt || body): hiding while the salt is secret, binding always."""
    if len(salt) != SALT_BYTES:
        raise LeafError(f"a commitment salt has {SALT_BYTES} bytes, not {len(salt)}")
    return hashlib.sha256(COMMITMENT_TAG + salt + body).hexdigest()


def committed_leaf(*, seq: int, prev: str, at: str, kind: str, commitment: str) -> bytes:
    """A v2 leaf of an event about a person (RFC 8785 bytes)."""
    return canonicalize({"v": LEAF_VERSION, "seq": seq, "prev": prev, "at": at, "kind": kind,
                         "commitment": commitment})


def public_leaf(*, seq: int, prev: str, at: str, kind: str, data: Mapping[str, Any]) -> bytes:
    """A v2 leaf of an event that concerns no person: its data is public (RFC 8785 bytes)."""
    return canonicalize({"v": LEAF_VERSION, "seq": seq, "prev": prev, "at": at, "kind": kind, "data": data})


def v1_subject(learner_salt: bytes, pseudonym: str) -> str:
    """The `subject` of a version-1 leaf: one value per learner across all their v1 events."""
    return hashlib.sha256(learner_salt + pseudonym.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class OpenedEvent:
    """A leaf checked against its opening. `subject` is the pseudonym the event was proven to be about, or
    None when nothing was proven about a person (no opening given for a v1 leaf, or an event about no one)."""

    version: int
    seq: int
    prev: str
    at: str
    kind: str
    subject: str | None
    data: dict[str, Any]
    public: bool  # the data was readable in the leaf itself


def _parse(leaf: str | bytes) -> dict[str, Any]:
    try:
        value = loads_strict(leaf if isinstance(leaf, str) else leaf.decode("utf-8"))
    except (CanonicalizationError, UnicodeDecodeError, ValueError) as exc:
        raise LeafError(f"the leaf is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise LeafError("the leaf is not a JSON object")
    for name, kind in (("v", int), ("seq", int), ("prev", str), ("at", str), ("kind", str)):
        if not isinstance(value.get(name), kind) or isinstance(value.get(name), bool):
            raise LeafError(f"the leaf has no valid {name!r}")
    return value


def _salt(opening: Mapping[str, Any]) -> bytes:
    salt = opening.get("salt")
    try:
        raw = bytes.fromhex(salt) if isinstance(salt, str) else b""
    except ValueError:
        raw = b""
    if not raw:
        raise LeafError("the opening has no salt (hex)")
    return raw


def open_leaf(leaf: str | bytes, opening: Mapping[str, Any] | None = None) -> OpenedEvent:
    """Parse a leaf and check `opening` against it; return what was proven. Raises LeafError when the leaf is
    malformed, when a v2 commitment has no opening or does not match it, or when a v1 subject does not match."""
    value = _parse(leaf)
    base = {"version": value["v"], "seq": value["seq"], "prev": value["prev"], "at": value["at"],
            "kind": value["kind"]}
    if opening is not None and not isinstance(opening, Mapping):
        raise LeafError("the opening is not a JSON object")
    if value["v"] == 2 and "commitment" in value:
        if opening is None:
            raise LeafError("this event is committed: it opens only with its salt")
        subject, data = opening.get("subject"), opening.get("data")
        if subject is not None and not isinstance(subject, str):
            raise LeafError("the opening's subject is not a string")
        if not isinstance(data, Mapping):
            raise LeafError("the opening has no data object")
        try:
            expected = commitment(_salt(opening), opening_body(subject, data))
        except CanonicalizationError as exc:
            raise LeafError(f"the opening's data is not canonical JSON: {exc}") from None
        if not isinstance(value["commitment"], str) or not hmac.compare_digest(expected, value["commitment"]):
            raise LeafError("the opening does not match the leaf's commitment")
        return OpenedEvent(**base, subject=subject, data=dict(data), public=False)
    if value["v"] == 2:
        if not isinstance(value.get("data"), dict):
            raise LeafError("a v2 leaf has either a commitment or data")
        return OpenedEvent(**base, subject=None, data=value["data"], public=True)
    if value["v"] == 1:
        data = value.get("data") if isinstance(value.get("data"), dict) else {}
        subject = None
        if opening is not None and "subject" in value:
            claimed = opening.get("subject")
            if not isinstance(claimed, str) or not hmac.compare_digest(
                    v1_subject(_salt(opening), claimed), str(value["subject"])):
                raise LeafError("the opening does not match the leaf's subject")
            subject = claimed
        return OpenedEvent(**base, subject=subject, data=data, public=True)
    raise LeafError(f"unknown leaf version {value['v']!r}")
