"""Refusals of consent and transfer, each with a stable code (docs/errors.md, "Consent and transfer").

They are `NodeError`s: rendered as `{"code", "message"}` to learners and staff, and returned by the origin's
`/federation/v1/records/release` to the destination, which passes the origin's code on unchanged.
"""

from __future__ import annotations

from node.errors import NodeError

__all__ = ["CODES", "TransferRefused"]

# code -> HTTP status
CODES: dict[str, int] = {
    "consent_unknown": 404,          # the origin holds no consent with this id
    "consent_invalid": 400,          # not a consent document, or its proof does not verify
    "consent_revoked": 403,          # the learner revoked the consent
    "consent_expired": 403,          # the consent's validity has ended
    "consent_scope_empty": 400,      # a consent names neither records nor categories
    "invalid_expiry": 400,           # expiry in the past or beyond the allowed maximum
    "unknown_destination": 400,      # the destination is not another member of the federation
    "unknown_origin": 400,           # the consent's origin is not another member of the federation
    "wrong_destination": 403,        # the consent names another destination than the requesting/receiving node
    "binding_mismatch": 403,         # the consent's holder binding is not one issued to this learner
    "no_agreement": 409,             # no active agreement between origin and destination today
    "credential_invalid": 422,       # (per item) proof, issuer, subject, dates or inclusion do not verify
    "credential_revoked": 422,       # (per item) the status list bit is set
    "checkpoint_invalid": 502,       # the origin's checkpoint is not signed by it or does not parse
    "checkpoint_inconsistent": 502,  # the origin's checkpoint does not extend the one it showed before
    "release_invalid": 502,          # the origin's release answer is not well formed
    "receipt_invalid": 400,          # a receipt whose proof, consent or destination does not match
    "already_revoked": 409,          # revoking a consent twice
    "revocation_invalid": 400,       # a record.revoked notice whose origin-signed status list does not show it
}


class TransferRefused(NodeError):
    """A consent or transfer refusal; the status follows the code (see CODES)."""

    def __init__(self, code: str, message: str, *, status: int | None = None, detail: dict | None = None) -> None:
        super().__init__(message, code=code, detail=detail)
        self.status_code = status or CODES.get(code, 400)
