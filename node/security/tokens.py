"""Signed bearer tokens for people (OAuth2 password flow): HS256 JWTs with a short lifetime.

A token names its account (`sub`: "staff:12" or "learner:345") and carries the account's token version
(`ver`); the account's version is checked on every request, so bumping it (sign-out, password change, staff
disabled, password reset) revokes every token issued before (node.auth.service.invalidate_tokens).
"""

from __future__ import annotations

import time

import jwt

from node.errors import Unauthorized

__all__ = ["issue_token", "read_token", "token_subject"]

_KINDS = frozenset({"staff", "learner"})
_MAX_ID = 2**63 - 1


def issue_token(*, secret: bytes, issuer: str, subject: str, roles: list[str], ttl: int, version: int = 0) -> str:
    now = int(time.time())
    claims = {"iss": issuer, "sub": subject, "roles": roles, "iat": now, "exp": now + ttl, "ver": version}
    return jwt.encode(claims, secret, algorithm="HS256")


def read_token(token: str, *, secret: bytes, issuer: str) -> dict:
    try:
        return jwt.decode(
            token, secret, algorithms=["HS256"], issuer=issuer, options={"require": ["exp", "sub", "iss"]}
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("the token has expired", code="token_expired") from None
    except jwt.InvalidTokenError:
        raise Unauthorized("the token is not valid", code="invalid_token") from None


def token_subject(claims: dict) -> tuple[str, int, int]:
    """(kind, account id, token version) of a verified token, or 401 invalid_token for any other shape: a
    validly signed token with `sub: "staff:abc"` or a version that is not a small integer is refused, not a 500."""
    kind, _, ident = str(claims.get("sub", "")).partition(":")
    version = claims.get("ver")
    if (
        kind not in _KINDS
        or not (ident.isascii() and ident.isdigit() and len(ident) <= 19 and int(ident) <= _MAX_ID)
        or type(version) is not int
        or not 0 <= version <= _MAX_ID
    ):
        raise Unauthorized("the token is not valid", code="invalid_token")
    return kind, int(ident), version
