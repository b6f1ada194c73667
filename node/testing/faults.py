"""Helpers of the deliberate faults (`CREDITNODE_TESTING__FAULTS`), used to prove the conformance suite
catches a broken node. The hooks themselves are one-liners marked `FAULT HOOK` in the node's code; they read
`settings.active_faults`, which is empty unless `federation.test_mode` is on.

| fault | hook | what the node then does wrong |
|---|---|---|
| `replay_check_off` | federation/transport/inbound.py | accepts a reused nonce |
| `accept_unknown_keys` | federation/transport/inbound.py | trusts any did:key signer outside the membership |
| `non_jcs_canonicalisation` | node/credentials/service.py | signs credentials over `json.dumps(sort_keys=True)` |
| `no_retry` | federation/outbox.py | dead-letters a message at its first failure |
| `double_delivery` | federation/outbox.py | sends every delivered message a second time |
| `wrong_conversion` | federation/transfers/transfer.py | recognises whole credits only (`convert_wrongly`) |
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from decimal import ROUND_DOWN, Decimal
from typing import Any

from crypto.dataintegrity import CRYPTOSUITE, PROOF_TYPE
from crypto.keys import b58encode

__all__ = ["active", "convert_wrongly", "sign_without_jcs"]


def active(ctx, name: str) -> bool:
    return name in ctx.settings.active_faults


def sign_without_jcs(ctx, document: dict) -> dict:
    """Fault `non_jcs_canonicalisation`: an eddsa-jcs-2022 proof computed over `json.dumps(sort_keys=True)`
    instead of RFC 8785 (differs on non-ASCII text and number forms), as a careless implementation would."""
    config = {"type": PROOF_TYPE, "cryptosuite": CRYPTOSUITE,
              "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "verificationMethod": ctx.identity.key_id, "proofPurpose": "assertionMethod"}
    if "@context" in document:
        config["@context"] = document["@context"]

    def digest(value: dict) -> bytes:
        return hashlib.sha256(json.dumps(value, sort_keys=True).encode("utf-8")).digest()

    signature = ctx.identity.signing_key.sign(digest(config) + digest(document))
    return {**document, "proof": {**config, "proofValue": "z" + b58encode(signature)}}


def convert_wrongly(recognition: Any) -> Any:
    """Fault `wrong_conversion`: the destination keeps whole credits only (rounds the converted figure down to
    an integer instead of to thousandths, half up), as an implementation reading "credits" as integers would."""
    credits = Decimal(recognition.credits).to_integral_value(rounding=ROUND_DOWN)
    return dataclasses.replace(recognition, credits=credits)
