"""Sign-in for staff and learners, lockout after failed attempts, token revocation, password change.

Who signs in with what: staff with their user name; learners with their account number or their ID number
(`id_type` defaults to resident_id). Every attempt costs one Argon2 verification whatever the name: an unknown
name, a disabled staff account or a learner without a password (not activated) is checked against a dummy hash,
so neither the answer nor its timing says whether an account exists.

Lockout (docs/accounts.md): `accounts.lockout_failures` failures within `accounts.lockout_window_seconds`
lock the account, or the unknown name, for `accounts.lockout_seconds`, doubling with each lockout in a row up to
`accounts.lockout_max_seconds`. The counters are rows of `sign_in_throttle`, updated with one atomic upsert,
so every worker process sees the same lock. Unknown names lock too (keyed by an HMAC of the name), or the
lockout itself would tell which accounts exist. Sign-in and activation count separately ("purpose"), so that
someone guessing passwords cannot keep the holder from activating with the code the outlet gave them.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, select

from config.settings import AccountSettings
from node.audit.service import record
from node.context import NodeContext
from node.deps import Principal, organisation_active
from node.errors import InvalidIdNumber, TooManyRequests
from node.learners.service import find_learner_by_account, learner_by_blind
from node.models import Learner, SignInThrottle, StaffAccount
from node.roles import Role
from node.security.idnumbers import normalise_id_number

__all__ = [
    "Account",
    "SignInAttempt",
    "Throttle",
    "account_key",
    "find_learner_by_login",
    "find_sign_in",
    "invalidate_tokens",
    "name_key",
    "principal_of",
    "record_failure",
]

Account = StaffAccount | Learner
_MAX_NAME = 200


@dataclass
class SignInAttempt:
    """What a sign-in name resolves to. `password_hash` None means: verify against the dummy, then refuse."""

    account: Account | None
    throttle_key: str
    password_hash: str | None

    @property
    def target(self) -> tuple[str | None, int | None]:
        if isinstance(self.account, StaffAccount):
            return "staff", self.account.id
        if isinstance(self.account, Learner):
            return "learner", self.account.id
        return None, None


def name_key(ctx: NodeContext, purpose: str, name: str) -> str:
    """The throttle key of a name that matches no account: an HMAC, so neither the name nor an ID number
    typed as a name is stored."""
    mac = hmac.new(ctx.token_secret, f"throttle:{purpose}:{name}".encode(), hashlib.sha256).hexdigest()
    return f"{purpose}:name:{mac[:32]}"


def account_key(purpose: str, account: Account) -> str:
    return f"{purpose}:{'staff' if isinstance(account, StaffAccount) else 'learner'}:{account.id}"


def find_learner_by_login(session: Session, ctx: NodeContext, *, account_no: str | None = None,
                          id_number: str | None = None, id_type: str = "resident_id") -> tuple[Learner | None, str]:
    """A learner by account number or by ID number (through the one ID parser and the blind index); also the
    canonical form of what was given, for the throttle key of a name that matches no account."""
    if account_no is not None:
        return find_learner_by_account(session, account_no), account_no
    try:
        normalised = normalise_id_number(id_type, id_number or "")
    except InvalidIdNumber:
        return None, f"{id_type}:{id_number}"
    return learner_by_blind(session, ctx.blind_index(id_type, normalised)), f"{id_type}:{normalised}"


def find_sign_in(session: Session, ctx: NodeContext, *, username: str, id_type: str | None = None,
                 purpose: str = "sign_in") -> SignInAttempt:
    """Resolve a sign-in name: a staff user name, else a learner's account number, else an ID number (of
    `id_type`, resident_id by default). With `id_type` given, only an ID number."""
    name = username.strip()
    if not name or len(name) > _MAX_NAME or "\x00" in name:  # PostgreSQL refuses NUL in text: no query
        return SignInAttempt(None, name_key(ctx, purpose, name[:_MAX_NAME]), None)
    learner = None
    if id_type is None:
        staff = session.exec(select(StaffAccount).where(StaffAccount.username == name)).first()
        if staff is not None:
            usable = staff.active and organisation_active(session, staff.organisation_id)
            return SignInAttempt(staff, account_key(purpose, staff), staff.password_hash if usable else None)
        learner, canonical = find_learner_by_login(session, ctx, account_no=name)
    if learner is None:
        learner, canonical = find_learner_by_login(session, ctx, id_number=name, id_type=id_type or "resident_id")
    if learner is None:
        return SignInAttempt(None, name_key(ctx, purpose, canonical), None)
    return SignInAttempt(learner, account_key(purpose, learner), learner.password_hash)


def principal_of(account: Account) -> Principal:
    if isinstance(account, StaffAccount):
        return Principal("staff", account.id, account.username, tuple(account.roles), account.organisation_id)
    return Principal("learner", account.id, f"learner:{account.id}", (Role.LEARNER,))


def invalidate_tokens(session: Session, account: Account) -> int:
    """Revoke every bearer token of `account` (a staff account or a learner) by bumping its token version;
    returns the new version. Only flushes: the caller records its own audited action (sign-out, password
    change or reset, staff disabled) and the request, job or command commits."""
    table = type(account).__table__
    version = session.execute(
        sa.update(table).where(table.c.id == account.id)
        .values(token_version=table.c.token_version + 1).returning(table.c.token_version)
    ).scalar_one()
    set_committed_value(account, "token_version", version)
    return version


class Throttle:
    """Failed attempts and lockouts per key, in the database (one row per key)."""

    def __init__(self, session: Session, settings: AccountSettings, *, now: float | None = None) -> None:
        self.session = session
        self.settings = settings
        self.now = int(now if now is not None else time.time())

    def check(self, key: str) -> None:
        """Refuse with 429 account_locked (Retry-After) while the key is locked."""
        row = self.session.get(SignInThrottle, key, populate_existing=True)
        if row is not None and row.locked_until > self.now:
            raise TooManyRequests("too many failed attempts: this account is locked for a while",
                                  code="account_locked", retry_after=row.locked_until - self.now)

    def failure(self, key: str) -> int | None:
        """Count a failure; returns the lockout's length in seconds if this failure locked the key."""
        s, t, now = self.settings, SignInThrottle.__table__, self.now
        stale = t.c.window_start < now - s.lockout_window_seconds
        dialect = postgresql if self.session.get_bind().dialect.name == "postgresql" else sqlite
        upsert = dialect.insert(t).values(key=key, failures=1, window_start=now, locked_until=0, lockouts=0,
                                          updated_at=now)
        upsert = upsert.on_conflict_do_update(
            index_elements=[t.c.key],
            set_={"failures": sa.case((stale, 1), else_=t.c.failures + 1),
                  "window_start": sa.case((stale, now), else_=t.c.window_start),
                  "updated_at": now},
        ).returning(t.c.failures, t.c.lockouts)
        failures, lockouts = self.session.execute(upsert).one()
        self._purge()
        if failures < s.lockout_failures:
            return None
        seconds = min(s.lockout_seconds * 2 ** min(lockouts, 30), s.lockout_max_seconds)
        self.session.execute(
            sa.update(t).where(t.c.key == key)
            .values(locked_until=now + seconds, lockouts=t.c.lockouts + 1, failures=0, window_start=now)
        )
        return seconds

    def success(self, key: str) -> None:
        self.session.execute(sa.delete(SignInThrottle.__table__).where(SignInThrottle.__table__.c.key == key))

    def _purge(self) -> None:
        """Forget keys with no failure for a day (or the longest lockout): the table stays small."""
        t = SignInThrottle.__table__
        horizon = self.now - max(self.settings.lockout_window_seconds, self.settings.lockout_max_seconds)
        self.session.execute(sa.delete(t).where(t.c.updated_at < horizon, t.c.locked_until < self.now))


def record_failure(session: Session, ctx: NodeContext, attempt: SignInAttempt, *, action: str, client: str,
                   code: str) -> None:
    """Count a failed attempt against its key and audit it (and the lockout it may start)."""
    locked = Throttle(session, ctx.settings.accounts).failure(attempt.throttle_key)
    target_type, target_id = attempt.target
    record(session, actor=None, action=action, outcome="denied", target_type=target_type, target_id=target_id,
           detail={"code": code, "client": client})
    if locked:
        record(session, actor=None, action="auth.lockout", outcome="denied", target_type=target_type,
               target_id=target_id, detail={"seconds": locked, "purpose": attempt.throttle_key.split(":", 1)[0],
                                            "client": client})
