"""Signed bearer tokens for people (OAuth2 password flow): HS256 JWTs with a short lifetime.

A token names its account (`sub`: "staff:12" or "learner:345") and carries the account's token version
(`ver`); the account's version is checked on every request, so bumping it (sign-out, password change, staff
disabled, password reset) revokes every token issued before (node.auth.service.invalidate_tokens).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

import jwt

from node.errors import Unauthorized

__all__ = ["issue_token", "read_token", "token_subject"]

_KINDS = frozenset({"staff", "learner"})
_MAX_ID = 2**63 - 1


def issue_token(*, secret: bytes, issuer: str, subject: str, roles: list[str], ttl: int, version: int = 0) -> str:
    now = int(time.time())
    claims = {"iss": issuer, "sub": subject, "roles": roles, "iat": now, "exp": now + ttl, "ver": version}
    return jwt.encode(claims, secret, algorithm="HS256")


class _VerifiedTokens:
    """Tokens whose signature and claims were checked, until their `exp`: a bounded LRU keyed by (secret, issuer,
    token), so a token is verified once per process instead of on every request (HS256 and the claim checks
    were ~11 % of a cheap authenticated read). What it remembers is only what the token itself says, which
    cannot change: whether the account still accepts it (revocation: its token version, a disabled account) is
    read from the database on every request, as before. A refused token is never remembered."""

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._items: OrderedDict[tuple[bytes, str, str], dict] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[bytes, str, str], now: float) -> dict | None:
        with self._lock:
            claims = self._items.get(key)
            if claims is None:
                return None
            if claims["exp"] <= now:  # as PyJWT: expired once `exp` is reached (no leeway)
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return dict(claims)

    def put(self, key: tuple[bytes, str, str], claims: dict) -> None:
        with self._lock:
            self._items[key] = dict(claims)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


verified_tokens = _VerifiedTokens()


def read_token(token: str, *, secret: bytes, issuer: str) -> dict:
    key = (secret, issuer, token)
    claims = verified_tokens.get(key, time.time())
    if claims is not None:
        return claims
    try:
        claims = jwt.decode(
            token, secret, algorithms=["HS256"], issuer=issuer, options={"require": ["exp", "sub", "iss"]}
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("the token has expired", code="token_expired") from None
    except jwt.InvalidTokenError:
        raise Unauthorized("the token is not valid", code="invalid_token") from None
    if isinstance(claims.get("exp"), int | float) and not isinstance(claims["exp"], bool):
        verified_tokens.put(key, claims)
    return claims


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
