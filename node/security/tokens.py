"""Signed bearer tokens for people (OAuth2 password flow): HS256 JWTs with a short lifetime."""

from __future__ import annotations

import time

import jwt

from node.errors import Unauthorized

__all__ = ["issue_token", "read_token"]


def issue_token(*, secret: bytes, issuer: str, subject: str, roles: list[str], ttl: int) -> str:
    now = int(time.time())
    claims = {"iss": issuer, "sub": subject, "roles": roles, "iat": now, "exp": now + ttl}
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
