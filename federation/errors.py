"""Refusals of the federation protocol, each with a stable code (docs/federation.md §3–4).

Exception tree (all are `node.errors.NodeError`, rendered as `{"code": ..., "message": ...}`)::

    TransportRefused (401)      unsigned, malformed_signature, unknown_member, bad_signature, expired,
                                replayed, digest_mismatch, wrong_destination
    PayloadTooLarge (413)       payload_too_large
    EnvelopeInvalid (422)       validation_error: the inbox envelope does not match its schema
    OriginMismatch (403)        origin_mismatch: envelope origin/destination differ from the signed peer
    SequenceGap (409)           sequence_gap, with `expected_seq`
    UnknownMessageType (400)    unknown_message_type
    ResyncFailed (502)          resync_failed: the peer refused a stream re-sync query or answered it malformed
    MembershipRefused (409)     not_chained, wrong_version, below_threshold, invalid_membership,
                                threshold_too_low, admission_required, admission_invalid, removal_required,
                                not_a_voter, no_membership
    PeerUnavailable             (not an HTTP error) a peer could not be reached or its reply is not signed
"""

from __future__ import annotations

from node.errors import BadRequest, Conflict, Forbidden, NodeError, PayloadTooLarge, Unauthorized

__all__ = [
    "TRANSPORT_CODES",
    "EnvelopeInvalid",
    "MembershipRefused",
    "OriginMismatch",
    "PayloadTooLarge",
    "PeerUnavailable",
    "ResyncFailed",
    "SequenceGap",
    "TransportRefused",
    "UnknownMessageType",
]

TRANSPORT_CODES = frozenset({
    "unsigned", "malformed_signature", "unknown_member", "bad_signature", "expired", "replayed",
    "digest_mismatch", "wrong_destination", "payload_too_large",
})


class TransportRefused(Unauthorized):
    """A peer request whose signature, key, window, nonce or destination is not acceptable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code)


class EnvelopeInvalid(NodeError):
    """Payload validation of the inbox envelope: 422 `validation_error` with `detail.errors`, as elsewhere."""

    status_code = 422
    code = "validation_error"


class OriginMismatch(Forbidden):
    code = "origin_mismatch"


class SequenceGap(Conflict):
    code = "sequence_gap"

    def __init__(self, expected_seq: int, got: int) -> None:
        super().__init__(f"message seq {got} is ahead of the stream; expected {expected_seq}",
                         detail={"expected_seq": expected_seq})
        self.expected_seq = expected_seq

    def to_dict(self) -> dict:
        return {**super().to_dict(), "expected_seq": self.expected_seq}


class UnknownMessageType(BadRequest):
    code = "unknown_message_type"


class MembershipRefused(Conflict):
    """A membership version that cannot be accepted; `detail.reasons` lists every reason found."""

    def __init__(self, reasons: list[dict], *, message: str | None = None) -> None:
        first = reasons[0] if reasons else {"code": "invalid_membership", "message": "refused"}
        super().__init__(message or first["message"], code=first["code"], detail={"reasons": reasons})


class ResyncFailed(NodeError):
    """The peer refused a stream re-sync query, or its answer is not well formed (docs/federation.md §4.1)."""

    status_code = 502
    code = "resync_failed"


class PeerUnavailable(NodeError):
    """A peer did not answer, or answered without a valid response signature."""

    status_code = 502
    code = "peer_unavailable"
