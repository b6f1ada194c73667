"""The mock peer as an **origin** node of a transfer: a tiny credit bank with its own ledger (an RFC 9162 log
of JCS leaves, version 2: salted commitments, each credential carrying its event's opening), signed credentials, a signed status list, signed checkpoints (C2SP notes under the log name
`<host:port>/creditnode/<node_id>/ledger`), consents it issues, and the answer to
`POST /federation/v1/records/release` as docs/agreements.md ("Consent and transfer", step 4) describes it.

Everything is built with `crypto` only, so a node under test that accepts these artefacts verifies the protocol's
formats, not a copy of its own code.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from crypto.dataintegrity import sign as di_sign
from crypto.jcs import canonicalize
from crypto.keys import Ed25519Key
from crypto.leaf import SALT_BYTES, commitment, committed_leaf, opening_body
from crypto.merkle import consistency_proof, inclusion_proof, leaf_hash, root_from_leaf_hashes
from crypto.note import NoteSigner, format_checkpoint, sign_note
from crypto.statuslist import StatusList

__all__ = ["MockOrigin", "Released"]

VC_V2 = "https://www.w3.org/ns/credentials/v2"
STATUS_SIZE = 131072
_STAMP = "%Y-%m-%dT%H:%M:%SZ"


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime(_STAMP)


@dataclass
class Released:
    """A consent the origin issued and what it released under it."""

    consent: dict
    credential_ids: list[str]
    revoked: bool = False
    releases: int = 0


@dataclass
class MockOrigin:
    node_id: str
    base_url: str
    did: str
    key_id: str
    key: Ed25519Key
    leaves: list[bytes] = field(default_factory=list)  # leaf hashes
    leaf_texts: list[str] = field(default_factory=list)  # the leaves (canonical JSON)
    credentials: dict[str, dict] = field(default_factory=dict)
    consents: dict[str, Released] = field(default_factory=dict)
    status: StatusList = field(default_factory=lambda: StatusList(size=STATUS_SIZE))
    receipts: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    @property
    def log_name(self) -> str:
        parts = urlsplit(self.base_url)
        return f"{parts.netloc}{parts.path.rstrip('/')}/creditnode/{self.node_id}/ledger"

    def _append(self, kind: str, data: dict, subject: str) -> tuple[int, bytes, dict]:
        """A version-2 leaf (docs/ledger.md): only a commitment to {data, subject} under a fresh salt is public;
        returns (seq, leaf hash, the opening's salt and data as a credential carries them)."""
        seq = len(self.leaves)
        prev = self.leaves[-1].hex() if self.leaves else "0" * 64
        salt = os.urandom(SALT_BYTES)
        leaf = committed_leaf(seq=seq, prev=prev, at=_now(), kind=kind,
                              commitment=commitment(salt, opening_body(subject, data)))
        digest = leaf_hash(leaf)
        self.leaves.append(digest)
        self.leaf_texts.append(leaf.decode("utf-8"))
        return seq, digest, {"salt": salt.hex(), "data": data}

    def issue(self, pseudonym: str, *, title: str, credits: str | None, hours: str | None, course_code: str,
              kind: str = "degree_course", level: str | None = None, reference_level: str | None = None,
              event_of: dict | None = None) -> dict:
        """Deposit an outcome for `pseudonym` and return its signed AchievementCredential (`credits`, `hours`:
        decimal strings, left out of the credential when None; `reference_level`: `creditBank.referenceLevel`).
        `event_of`: a credential issued before, whose ledger event this one names instead of its own (a
        misfiled record: signed, included, but the logged event is another record's)."""
        with self._lock:
            number = len(self.credentials) + 1
            credential_id = f"{self.base_url}/credentials/achievements/{number}"
            if event_of is None:
                seq, digest, opening = self._append(
                    "achievement.deposited", {"achievement": number, "title": title, "credits": credits}, pseudonym)
            else:
                bank = event_of["credentialSubject"]["creditBank"]
                seq, digest = bank["ledgerSequence"], bytes.fromhex(bank["ledgerLeafHash"])
                opening = bank["ledgerOpening"]
            record = {"type": "CreditBankRecord", "achievementKind": kind, "institutionCode": "MOCK",
                      "issuingInstitution": {"id": f"{self.base_url}/institutions/MOCK", "name": "Mock University"},
                      "source": "individual", "courseCode": course_code,
                      "earnedOn": "2025-06-30", "ledgerSequence": seq, "ledgerLeafHash": digest.hex(),
                      "ledgerLog": f"{self.base_url}/api/v1/ledger", "ledgerOpening": opening}
            for name, value in (("credits", credits), ("hours", hours), ("level", level),
                                ("referenceLevel", reference_level)):
                if value is not None:
                    record[name] = value
            unsigned = {
                "@context": [VC_V2],
                "id": credential_id,
                "type": ["VerifiableCredential", "AchievementCredential"],
                "issuer": {"id": self.did, "type": ["Profile"], "name": "Mock origin"},
                "validFrom": _now(),
                "name": title,
                "credentialSubject": {
                    "id": pseudonym, "type": ["AchievementSubject"],
                    "achievement": {"id": f"{self.base_url}/achievements/MOCK/{course_code}",
                                    "type": ["Achievement"], "name": title,
                                    "criteria": {"narrative": title}},
                    "creditBank": record,
                },
                "credentialStatus": {"id": f"{self.base_url}/status/0#{number}", "type": "BitstringStatusListEntry",
                                     "statusPurpose": "revocation", "statusListIndex": str(number),
                                     "statusListCredential": f"{self.base_url}/status/0"},
            }
            credential = di_sign(unsigned, self.key, self.key_id, proof_purpose="assertionMethod", created=_now())
            self.credentials[credential_id] = credential
            return credential

    def revoke_credential(self, credential: dict) -> None:
        with self._lock:
            self.status.set(int(credential["credentialStatus"]["statusListIndex"]), True)

    def consistency(self, first: int, second: int) -> list[str]:
        """RFC 9162 consistency proof between two sizes of this origin's log (hex hashes)."""
        with self._lock:
            if not 0 <= first <= second <= len(self.leaves):
                raise ValueError(f"sizes {first}..{second} outside the log (size {len(self.leaves)})")
            if first in (0, second):
                return []
            return [h.hex() for h in consistency_proof(self.leaves[:second], first, second)]

    def status_list(self) -> dict:
        unsigned = {"@context": [VC_V2], "id": f"{self.base_url}/status/0",
                    "type": ["VerifiableCredential", "BitstringStatusListCredential"], "issuer": self.did,
                    "validFrom": _now(),
                    "credentialSubject": {"id": f"{self.base_url}/status/0#list", "type": "BitstringStatusList",
                                          "statusPurpose": "revocation", "encodedList": self.status.encode()}}
        return di_sign(unsigned, self.key, self.key_id, proof_purpose="assertionMethod", created=_now())

    def checkpoint(self) -> tuple[str, int, bytes]:
        size = len(self.leaves)
        root = root_from_leaf_hashes(self.leaves)
        note = sign_note(format_checkpoint(self.log_name, size, root), [NoteSigner(self.log_name, self.key)])
        return note, size, root

    def consent(self, *, pseudonym: str, destination: str, destination_did: str, holder_binding: str,
                credentials: list[dict], days: int = 1) -> dict:
        """A TransferConsent this origin issues for `credentials` to `destination`."""
        now = dt.datetime.now(dt.UTC)
        consent_id = f"urn:uuid:{uuid.uuid4()}"
        unsigned = {
            "@context": [VC_V2], "id": consent_id, "type": ["VerifiableCredential", "TransferConsent"],
            "issuer": self.did, "validFrom": now.strftime(_STAMP),
            "validUntil": (now + dt.timedelta(days=days)).strftime(_STAMP),
            "credentialSubject": {"id": pseudonym, "type": "TransferConsent", "origin": self.node_id,
                                  "destination": destination, "destinationDid": destination_did,
                                  "records": [c["id"] for c in credentials], "categories": [],
                                  "purpose": "conformance: credit transfer", "holderBinding": holder_binding},
        }
        document = di_sign(unsigned, self.key, self.key_id, proof_purpose="assertionMethod",
                           created=now.strftime(_STAMP))
        with self._lock:
            self.consents[consent_id] = Released(document, [c["id"] for c in credentials])
        return document

    def release(self, peer_node_id: str, body: Any) -> tuple[int, dict]:
        """The answer to a release request from `peer_node_id` (already authenticated by its signature)."""
        document = body.get("consent") if isinstance(body, dict) else None
        entry = self.consents.get(document.get("id")) if isinstance(document, dict) else None
        if entry is None:
            return 404, {"code": "consent_unknown", "message": "no such consent"}
        if canonicalize(document) != canonicalize(entry.consent):
            return 400, {"code": "consent_invalid", "message": "not the consent this origin issued"}
        if entry.consent["credentialSubject"]["destination"] != peer_node_id:
            return 403, {"code": "wrong_destination", "message": "the consent names another destination"}
        if entry.revoked:
            return 403, {"code": "consent_revoked", "message": "revoked"}
        with self._lock:
            entry.releases += 1
            note, size, _root = self.checkpoint()
            items = []
            for credential_id in entry.credential_ids:
                credential = self.credentials[credential_id]
                bank = credential["credentialSubject"]["creditBank"]
                seq = bank["ledgerSequence"]
                items.append({"credential": credential, "leaf": self.leaf_texts[seq], "inclusion": {
                    "seq": seq, "tree_size": size, "leaf_hash": bank["ledgerLeafHash"],
                    "root_hash": root_from_leaf_hashes(self.leaves[:size]).hex(),
                    "proof": [h.hex() for h in inclusion_proof(self.leaves[:size], seq, size)]}})
        return 200, {"consent": document["id"], "origin": self.node_id, "checkpoint": note, "credentials": items,
                     "status_lists": {f"{self.base_url}/status/0": self.status_list()}}
