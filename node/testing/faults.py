"""Helpers of the deliberate faults (`CREDITNODE_TESTING__FAULTS`), used to prove the conformance suite
catches a broken node. The hooks themselves are one-liners marked `FAULT HOOK` in the node's code; they read
`settings.active_faults`, which is empty unless `federation.test_mode` is on."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

from crypto.dataintegrity import CRYPTOSUITE, PROOF_TYPE
from crypto.keys import b58encode

__all__ = ["active", "sign_without_jcs"]


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
