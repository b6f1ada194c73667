"""Consent and receipt documents are JSON-LD a third party can process: safe-mode expansion (every term defined
by the federation context) and RDFC canonicalization, as for credentials (tests/credentials/test_jsonld.py)."""

from __future__ import annotations

from sqlmodel import select

from crypto.jsonld import canonicalize_rdfc, expand_safe
from federation.outbox import flush_outbox
from node.models import TransferReceipt
from tests.federation.test_transfers import Person, automatic  # noqa: F401 - the fixture

__all__ = ["automatic"]


def test_consent_and_receipt_expand_in_safe_mode(joined, automatic) -> None:  # noqa: F811
    person = Person(joined, "高等数学", "4")
    consent = person.consent()
    expand_safe(consent)
    canonicalize_rdfc({k: v for k, v in consent.items() if k != "proof"})
    r = person.transfer(consent)
    assert r.status_code == 201, r.text
    flush_outbox(joined.b.ctx)
    with joined.a.session() as s:
        receipt = s.exec(select(TransferReceipt)).one().document
    assert receipt["credentialSubject"]["items"][0]["outcome"] == "recognised"
    expand_safe(receipt)
    canonicalize_rdfc({k: v for k, v in receipt.items() if k != "proof"})
