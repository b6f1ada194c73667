"""The JSON-LD contexts of the documents the node signs (docs/credentials.md).

* **The federation context** ``https://w3id.org/yangtze-credit-bank/v2`` (``FEDERATION_CONTEXT``): one URL for
  every member, its bytes bundled with the software (``crypto/contexts/yangtze-credit-bank-v2.jsonld``) and
  pinned by ``digestSRI`` in the membership document (``context``), served by every node as a mirror at
  ``FEDERATION_CONTEXT_PATH``. Every credit-bank term lives in a type-scoped context of a credit-bank type
  (``CreditBankRecord``, ``CreditBankTranscript``, ``TransferConsent``, ``TransferReceipt``,
  ``ExemptionStatement``), so nothing clashes with the protected terms of VC 2.0 or OB 3.0.3.
* **The old per-node context** ``{base_url}/contexts/creditbank/v1`` (``CREDITBANK_CONTEXT``): what credentials
  issued before the federation context used. It keeps being served, unchanged, so they stay verifiable
  (``eddsa-jcs-2022`` never processes JSON-LD); it is not used for new documents.
"""

from __future__ import annotations

from functools import cache

from crypto.jsonld import ContextLoader, bundled_contexts, default_loader, digest_sri

__all__ = [
    "CREDITBANK_CONTEXT",
    "CREDITBANK_CONTEXT_PATH",
    "FEDERATION_CONTEXT",
    "FEDERATION_CONTEXT_PATH",
    "OB_EXTENSIONS",
    "OB_SCHEMA",
    "OB_V3",
    "VC_V2",
    "context_loader",
    "credential_contexts",
    "federation_context_bytes",
    "federation_context_pin",
]

VC_V2 = "https://www.w3.org/ns/credentials/v2"
OB_V3 = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"
OB_EXTENSIONS = "https://purl.imsglobal.org/spec/ob/v3p0/extensions.json"  # 1EdTechJsonSchemaValidator2019
FEDERATION_CONTEXT = "https://w3id.org/yangtze-credit-bank/v2"
FEDERATION_CONTEXT_PATH = "/contexts/yangtze-credit-bank/v2"
# The OB 3.0 AchievementCredential JSON Schema, for verifiers that check `credentialSchema`.
OB_SCHEMA = {
    "id": "https://purl.imsglobal.org/spec/ob/v3p0/schema/json-ld/ob_v3p0_achievementcredential_schema.json",
    "type": "1EdTechJsonSchemaValidator2019",
}

CREDITBANK_CONTEXT_PATH = "/contexts/creditbank/v1"
_VOCAB = "https://w3id.org/yangtze-credit-bank/vocab#"

# Frozen: the exact document old credentials name (do not edit; it is what they were signed against).
CREDITBANK_CONTEXT = {
    "@context": {
        "@protected": True,
        "cb": _VOCAB,
        "xsd": "http://www.w3.org/2001/XMLSchema#",
        "creditBank": {"@id": "cb:creditBank", "@type": "@id"},
        "CreditBankRecord": "cb:CreditBankRecord",
        "credits": {"@id": "cb:credits", "@type": "xsd:decimal"},
        "hours": {"@id": "cb:hours", "@type": "xsd:decimal"},
        "level": "cb:level",
        "referenceLevel": "cb:referenceLevel",
        "score": "cb:score",
        "achievementKind": "cb:achievementKind",
        "issuingInstitution": {"@id": "cb:issuingInstitution", "@type": "@id"},
        "institutionCode": "cb:institutionCode",
        "courseCode": "cb:courseCode",
        "term": "cb:term",
        "earnedOn": {"@id": "cb:earnedOn", "@type": "xsd:date"},
        "expiresOn": {"@id": "cb:expiresOn", "@type": "xsd:date"},
        "source": "cb:source",
        "ledgerSequence": {"@id": "cb:ledgerSequence", "@type": "xsd:integer"},
        "ledgerLeafHash": "cb:ledgerLeafHash",
        "ledgerLog": {"@id": "cb:ledgerLog", "@type": "@id"},
        "ledgerOpening": {"@id": "cb:ledgerOpening", "@type": "@json"},
        "node": "cb:node",
    }
}


def federation_context_bytes() -> bytes:
    """The federation context exactly as bundled (and served, and pinned)."""
    return bundled_contexts()[FEDERATION_CONTEXT]


@cache
def federation_context_pin() -> dict:
    """``{"id": url, "digestSRI": "sha384-…"}``: what the membership document pins and credentials cite in
    ``relatedResource``."""
    return {"id": FEDERATION_CONTEXT, "digestSRI": digest_sri(federation_context_bytes())}


def credential_contexts() -> list[str]:
    """The ``@context`` of an OB 3.0 AchievementCredential the node issues."""
    return [VC_V2, OB_V3, OB_EXTENSIONS, FEDERATION_CONTEXT]


def context_loader(pins: dict[str, str] | None = None) -> ContextLoader:
    """The JSON-LD loader (bundled contexts only). ``pins`` (URL → digestSRI, e.g. the membership's) make a
    context whose bundled bytes differ unusable, so a verifier never processes a context the federation did
    not agree on."""
    loader = default_loader()
    if not pins:
        return loader
    return _pinned_loader(tuple(sorted(pins.items())))


@cache
def _pinned_loader(pins: tuple[tuple[str, str], ...]) -> ContextLoader:
    return ContextLoader(pins=dict(pins))
