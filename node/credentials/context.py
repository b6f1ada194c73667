"""The node's own JSON-LD context for credit-bank fields, served at /contexts/creditbank/v1."""

from __future__ import annotations

__all__ = ["CREDITBANK_CONTEXT", "CREDITBANK_CONTEXT_PATH", "OB_V3", "VC_V2"]

VC_V2 = "https://www.w3.org/ns/credentials/v2"
OB_V3 = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"
CREDITBANK_CONTEXT_PATH = "/contexts/creditbank/v1"
_VOCAB = "https://w3id.org/yangtze-credit-bank/vocab#"

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
