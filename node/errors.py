"""Errors the node reports, each with an HTTP status and a stable machine-readable code.

One handler (`node.app`) renders every `NodeError` as `{"code": ..., "message": ...}`; the codes are listed in
`docs/errors.md` and peers and the conformance suite rely on them.

Exception tree::

    NodeError
    ├── BadRequest (400)            invalid_* codes for semantically bad input
    │   └── InvalidIdNumber         invalid_id_number
    ├── Unauthorized (401)          not_authenticated, invalid_credentials, invalid_token, token_revoked
    ├── Forbidden (403)             forbidden, self_review, same_reviewer
    ├── NotFound (404)              not_found
    ├── Conflict (409)              illegal_transition, duplicate, stale_version, already_appealed
    ├── Gone (410)                  learner_erased
    ├── PayloadTooLarge (413)       payload_too_large
    ├── UnsupportedMediaType (415)  unsupported_media_type
    └── TooManyRequests (429)       rate_limited, account_locked (with a Retry-After header)

An error may add response headers (`NodeError.headers`): `WWW-Authenticate` on 401, `Retry-After` on 429.
"""

from __future__ import annotations

import math

__all__ = [
    "BadRequest",
    "Conflict",
    "Forbidden",
    "Gone",
    "InvalidIdNumber",
    "NodeError",
    "NotFound",
    "PayloadTooLarge",
    "TooManyRequests",
    "Unauthorized",
    "UnsupportedMediaType",
]


class NodeError(Exception):
    status_code: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, detail: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.detail = detail

    def headers(self) -> dict[str, str] | None:
        """Response headers that go with this error (rendered by the one handler in `node.app`)."""
        return None

    def to_dict(self) -> dict:
        body = {"code": self.code, "message": self.message}
        if self.detail:
            body["detail"] = self.detail
        return body


class BadRequest(NodeError):
    status_code = 400
    code = "bad_request"


class InvalidIdNumber(BadRequest):
    code = "invalid_id_number"


class Unauthorized(NodeError):
    status_code = 401
    code = "not_authenticated"

    def headers(self) -> dict[str, str] | None:
        return {"WWW-Authenticate": "Bearer"}


class Forbidden(NodeError):
    status_code = 403
    code = "forbidden"


class NotFound(NodeError):
    status_code = 404
    code = "not_found"


class Conflict(NodeError):
    status_code = 409
    code = "conflict"


class Gone(NodeError):
    status_code = 410
    code = "gone"


class PayloadTooLarge(NodeError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(NodeError):
    status_code = 415
    code = "unsupported_media_type"


class TooManyRequests(NodeError):
    """Refused for now: `retry_after` seconds (at least 1) go out as `Retry-After` and `detail.retry_after`."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float = 60, code: str | None = None,
                 detail: dict | None = None) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(message, code=code, detail={**(detail or {}), "retry_after": self.retry_after})

    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": str(self.retry_after)}
