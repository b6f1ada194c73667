"""The node's identity as others see it: its did:web, its DID document, and signing with the current key."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from crypto.dataintegrity import JCS
from crypto.dataintegrity import sign as di_sign
from crypto.did import VerificationMethodSpec, build_did_document, did_web_from_url
from crypto.keys import Ed25519Key
from node.identity.keyring import KeyRing

__all__ = ["NodeIdentity"]


@dataclass
class NodeIdentity:
    did: str
    ring: KeyRing

    @classmethod
    def of(cls, base_url: str, ring: KeyRing) -> NodeIdentity:
        return cls(did=did_web_from_url(base_url), ring=ring)

    @property
    def key_id(self) -> str:
        """The verification method id of the current key: `did:web:…#key-N`."""
        return f"{self.did}#{self.ring.current}"

    @property
    def signing_key(self) -> Ed25519Key:
        return self.ring.current_key.signing_key

    def did_document(self) -> dict:
        specs = [
            VerificationMethodSpec(
                fragment=k.key_id,
                public_multikey=k.signing_key.public_multikey,
                expires=k.expires,
                revoked=k.revoked,
            )
            for k in self.ring.keys
        ]
        return build_did_document(self.did, specs)

    def sign(self, document: dict, *, proof_purpose: str = "assertionMethod", created: str | None = None,
             previous_proof: str | list[str] | None = None, proof_id: str | None = None,
             cryptosuite: str = JCS, canonical_document: str | None = None) -> dict:
        """The document with the current key's proof added (``eddsa-jcs-2022`` unless ``cryptosuite`` says
        ``eddsa-rdfc-2022``, which uses the bundled JSON-LD contexts; ``canonical_document``: its RDFC-1.0 form
        when the caller has composed it, see ``crypto.dataintegrity.sign``)."""
        created = created or dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return di_sign(document, self.signing_key, self.key_id, proof_purpose=proof_purpose, created=created,
                       previous_proof=previous_proof, proof_id=proof_id, cryptosuite=cryptosuite,
                       canonical_document=canonical_document)

    def sign_proof_set(self, document: dict, *, cryptosuites: tuple[str, ...] = (JCS,),
                       proof_purpose: str = "assertionMethod") -> dict:
        """The document with one proof per cryptosuite, each over the unsecured document, as a proof set
        (``proof`` is always a list, as the OB 3.0 JSON Schema requires)."""
        created = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        unsecured = {k: v for k, v in document.items() if k != "proof"}
        proofs = [self.sign(unsecured, proof_purpose=proof_purpose, created=created, cryptosuite=suite)["proof"]
                  for suite in cryptosuites]
        return {**unsecured, "proof": proofs}
