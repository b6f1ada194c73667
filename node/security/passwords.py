"""Password hashing with Argon2id (argon2-cffi defaults, RFC 9106 low-memory profile), a bounded number at once.

What starved other requests (issue 11.6, 16 concurrent bad sign-ins pushed an unrelated GET to 7.3 s): the
sign-in handler is a plain `def`, so it runs in Starlette's thread pool (40 threads shared by every plain route);
one Argon2 verification takes ~0.15 s on 4 lanes and 64 MiB, so 16 at once ran 64 hashing threads on 2 cores;
and each request kept its database transaction open while hashing (on SQLite a `BEGIN IMMEDIATE`, i.e. the
write lock every other writer waits for; on PostgreSQL a pooled connection). So:

- `PasswordGate`: at most `accounts.password_hash_concurrency` hashes at once, at most
  `accounts.password_hash_queue` waiting for a slot; a sign-in beyond that is refused at once with
  429 `rate_limited` (Retry-After: 1), which frees its thread instead of parking it;
- the sign-in ends its read transaction before it hashes (node.auth.router);
- per-client rate limits and per-account lockout (node.security.ratelimit, node.auth.service) cut the load an
  attacker can send in the first place.

Unknown users cost the same as known ones: `verify_password(None, ...)` verifies against a dummy hash.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from node.errors import TooManyRequests

__all__ = ["PasswordGate", "hash_password", "verify_password"]

_hasher = PasswordHasher()
# A valid hash of a random password: verifying against it keeps the timing of unknown users the same.
_DUMMY = _hasher.hash("no-such-user-dummy-password")


class PasswordGate:
    """At most `concurrency` Argon2 computations at once in this process, at most `queue` waiting."""

    def __init__(self, concurrency: int = 2, queue: int = 8) -> None:
        self._slots = threading.BoundedSemaphore(concurrency)
        self._queue = queue
        self._waiting = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        if not self._slots.acquire(blocking=False):
            with self._lock:
                if self._waiting >= self._queue:
                    raise TooManyRequests("the node is busy checking passwords; try again in a moment",
                                          retry_after=1)
                self._waiting += 1
            try:
                self._slots.acquire()
            finally:
                with self._lock:
                    self._waiting -= 1
        try:
            yield
        finally:
            self._slots.release()


_UNGATED = contextlib.nullcontext


def hash_password(password: str, *, gate: PasswordGate | None = None) -> str:
    if len(password) < 8:
        raise ValueError("a password has at least 8 characters")
    with gate.slot() if gate else _UNGATED():
        return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str, *, gate: PasswordGate | None = None) -> bool:
    """True if `password` matches; `password_hash=None` (no such account, or no password yet) costs the same
    as a real check and is always False."""
    with gate.slot() if gate else _UNGATED():
        try:
            return _hasher.verify(password_hash or _DUMMY, password) and password_hash is not None
        except (VerificationError, InvalidHashError):
            return False
