"""FastAPI dependencies: the node context, the request's session, the authenticated principal, roles.

Deny by default: every route declares `Depends(require_roles(...))` or `Depends(public)`; a test walks the
routes and fails if one declares neither. Refusals are audited in the request's session before it is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Annotated, TypeVar

import sqlalchemy as sa
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool

from node.audit.service import record
from node.context import NodeContext
from node.db import READ_MODE, is_sqlite, read_mode, wrote
from node.errors import Forbidden, Unauthorized
from node.models import ApiKey, Learner, Organisation, StaffAccount
from node.roles import Role
from node.security.tokens import read_token, token_subject

__all__ = [
    "CtxDep",
    "LearnerCall",
    "LearnerCallDep",
    "Principal",
    "PrincipalDep",
    "SessionDep",
    "get_ctx",
    "get_principal",
    "lookup_principal",
    "on_reader",
    "request_unit_of_work",
    "end_request_transaction",
    "get_session",
    "public",
    "require_roles",
]

T = TypeVar("T")

_oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a staff member, a learner, an institution system (API key)."""

    kind: str  # staff | learner | api_key
    id: int
    name: str
    roles: tuple[str, ...]
    organisation_id: int | None = None
    extra: dict = field(default_factory=dict, compare=False)

    def has_any(self, roles: frozenset[str]) -> bool:
        return bool(roles.intersection(self.roles))

    @property
    def learner_id(self) -> int | None:
        return self.id if self.kind == "learner" else None


async def get_ctx(request: Request) -> NodeContext:
    # async: a plain function dependency costs a worker-thread hop per request
    return request.app.state.ctx


CtxDep = Annotated[NodeContext, Depends(get_ctx)]


_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The session of the request being served (set by get_session; threadpool calls see it: they copy the context).
request_session: ContextVar[Session | None] = ContextVar("creditnode_request_session", default=None)


async def get_session(request: Request, ctx: CtxDep) -> AsyncIterator[Session]:
    """One unit of work per request: commit on success, roll back on error.

    Function-scoped (below): the commit runs when the endpoint returns, *before* the response is sent, so a
    client never sees a 2xx for a write that did not commit, and its next request sees the write. (FastAPI's
    default for a dependency with `yield` is to finish it after the response has gone out.)

    A plain (`def`) endpoint's transaction is committed in the endpoint's own worker thread as it returns
    (`end_request_transaction`, installed by node.app), so no transaction, and no SQLite write lock, waits for
    another thread: with every worker thread busy, a lock holder waiting for a thread to commit in stalled the
    server until SQLite's busy timeout. What is left here usually costs no I/O and runs on the event loop; a
    commit that may wait (pending changes, or a write on PostgreSQL, whose commit waits for the disk) goes to a
    worker thread. GET and HEAD requests begin their transactions in read mode (node/db.py)."""
    async with request_unit_of_work(request, ctx) as session:
        yield session


@contextlib.asynccontextmanager
async def request_unit_of_work(request: Request, ctx: NodeContext) -> AsyncIterator[Session]:
    """The body of `get_session` (also the learner reads' one dependency, `LearnerCallDep`)."""
    session = Session(ctx.engine, expire_on_commit=False)
    if request.method in _READ_METHODS:
        session.info[READ_MODE] = True
    token = request_session.set(session)
    try:
        yield session
        if _may_wait(session):
            await run_in_threadpool(session.commit)
        else:
            session.commit()
    except BaseException:
        if session.in_transaction() and wrote(session) and not is_sqlite(ctx.engine):
            await run_in_threadpool(session.rollback)
        else:
            session.rollback()
        raise
    finally:
        session.close()
        with contextlib.suppress(ValueError):
            request_session.reset(token)


def _may_wait(session: Session) -> bool:
    if not session.in_transaction():
        return False
    if session.new or session.dirty or session.deleted:
        return True  # the flush may wait for SQLite's write lock or PostgreSQL's row locks
    return wrote(session) and not is_sqlite(session.get_bind())


def end_request_transaction() -> None:
    """End the request session's transaction now (commit), in the calling thread: called by node.app at the end of
    every plain endpoint, in the endpoint's worker thread. Nothing is left open across the next thread hop."""
    session = request_session.get()
    if session is not None and session.in_transaction():
        session.commit()


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


async def get_principal(
    request: Request, ctx: CtxDep, session: SessionDep, token: Annotated[str | None, Depends(_oauth2)]
) -> Principal:
    """Who is calling. The lookup is the request session's first work, a read (node.db.read_mode: on SQLite it
    takes no lock, whatever the request's method); its transaction is ended at once, so that a route that works
    in session scopes of its own (a transfer pulls from a peer while this request waits) never waits on its own
    request.

    On SQLite the lookup runs on the event loop, without a worker-thread hop: a read-mode transaction in WAL mode
    waits for no lock, and the pool holds more connections than there are worker threads, so nothing in it can
    wait (one primary-key read, ~0.1 ms). On PostgreSQL it runs in a worker thread (a round trip to the server).
    A request without credentials is refused before any of it."""
    if not token and not request.headers.get("x-api-key"):
        raise Unauthorized("sign in first (bearer token or X-API-Key)")
    if is_sqlite(ctx.engine):
        return lookup_principal(request, ctx, session, token)
    return await run_in_threadpool(lookup_principal, request, ctx, session, token)


def lookup_principal(request: Request, ctx: NodeContext, session: Session, token: str | None) -> Principal:
    """The synchronous lookup behind `get_principal` (the portal's pages call it with the session cookie's token)."""
    try:
        with read_mode(session):
            return _principal(request, ctx, session, token)
    finally:
        if not (session.new or session.dirty or session.deleted):
            session.commit()


def _principal(request: Request, ctx: NodeContext, session: Session, token: str | None) -> Principal:
    api_key = request.headers.get("x-api-key")
    if api_key:
        return _principal_from_api_key(session, api_key)
    if not token:
        raise Unauthorized("sign in first (bearer token or X-API-Key)")
    kind, ident, version = token_subject(read_token(token, secret=ctx.token_secret, issuer=ctx.node_id))
    # one row of plain columns per request, from statements built once (no ORM object, no statement to build)
    if kind == "staff":
        staff = session.connection().execute(_STAFF_PRINCIPAL, {"ident": ident}).first()
        if staff is None or not staff.active:
            raise Unauthorized("this staff account is disabled", code="account_disabled")
        if staff.organisation_id is not None and not staff.org_active:
            raise Unauthorized("this staff member's organisation is deactivated", code="organisation_disabled")
        if staff.token_version != version:
            raise _revoked()
        return Principal("staff", staff.id, staff.username, tuple(staff.roles), staff.organisation_id)
    learner_version = session.connection().execute(_LEARNER_VERSION, {"ident": ident}).scalar()
    if learner_version is None or learner_version != version:
        raise _revoked()
    return Principal("learner", ident, f"learner:{ident}", (Role.LEARNER,))


_STAFF_PRINCIPAL = (
    sa.select(StaffAccount.id, StaffAccount.username, StaffAccount.roles, StaffAccount.organisation_id,
              StaffAccount.active, StaffAccount.token_version, Organisation.active.label("org_active"))
    .outerjoin(Organisation, Organisation.id == StaffAccount.organisation_id)
    .where(StaffAccount.id == sa.bindparam("ident"))
)
_LEARNER_VERSION = sa.select(Learner.token_version).where(Learner.id == sa.bindparam("ident"))


def _revoked() -> Unauthorized:
    return Unauthorized("the token was revoked (signed out, or the password changed); sign in again",
                        code="token_revoked")


def _principal_from_api_key(session: Session, presented: str) -> Principal:
    prefix = presented.split(".", 1)[0]
    key = session.exec(select(ApiKey).where(ApiKey.prefix == prefix)).first()
    digest = hashlib.sha256(presented.encode()).hexdigest()
    if key is None or key.revoked_at is not None or not _consteq(key.key_hash, digest):
        raise Unauthorized("the API key is not valid", code="invalid_api_key")
    if not organisation_active(session, key.organisation_id):
        raise Unauthorized("the API key's institution is deactivated", code="organisation_disabled")
    return Principal("api_key", key.id, f"api_key:{key.prefix}", tuple(key.roles), key.organisation_id)


def organisation_active(session: Session, organisation_id: int | None) -> bool:
    """Staff and API keys of a deactivated organisation cannot act for it (docs/organisations.md)."""
    if organisation_id is None:
        return True
    org = session.get(Organisation, organisation_id)
    return org is not None and org.active


def _consteq(a: str, b: str) -> bool:
    import hmac

    return hmac.compare_digest(a.encode(), b.encode())


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require_roles(*roles: str) -> Callable[..., Principal]:
    """A dependency that lets the call through only for a principal holding one of `roles`."""
    allowed = frozenset(roles)
    if not allowed:
        raise ValueError("name at least one role")

    async def dependency(request: Request, principal: PrincipalDep, session: SessionDep) -> Principal:
        if not principal.has_any(allowed):
            await run_in_threadpool(_audit_refusal, request, principal, session, allowed)
            raise Forbidden(f"this action needs one of the roles: {', '.join(sorted(allowed))}")
        return principal

    dependency.allowed_roles = allowed  # type: ignore[attr-defined]
    return dependency


@dataclass(frozen=True, slots=True)
class LearnerCall:
    """What a learner's own read needs: the node, the request's unit of work, the learner."""

    ctx: NodeContext
    session: Session
    me: Principal


_LEARNER_ONLY = frozenset({Role.LEARNER})


async def _learner_call(
    request: Request, token: Annotated[str | None, Depends(_oauth2)]
) -> AsyncIterator[LearnerCall]:
    """`require_roles(Role.LEARNER)` with its session and context as ONE dependency, for the learner's hot reads
    (archive, credential, transcript): the same checks in the same order (`get_principal`, the role, an audited
    refusal) and the same unit of work (`request_unit_of_work`), without FastAPI resolving five dependencies per
    request (~0.3 ms of a ~1 ms read; docs/performance.md "Third pass")."""
    ctx: NodeContext = request.app.state.ctx
    async with request_unit_of_work(request, ctx) as session:
        principal = await get_principal(request, ctx, session, token)
        if not principal.has_any(_LEARNER_ONLY):
            await run_in_threadpool(_audit_refusal, request, principal, session, _LEARNER_ONLY)
            raise Forbidden(f"this action needs one of the roles: {Role.LEARNER}")
        yield LearnerCall(ctx, session, principal)


_learner_call.allowed_roles = _LEARNER_ONLY  # type: ignore[attr-defined]
# function scope, like SessionDep: the unit of work ends before the response is sent
LearnerCallDep = Annotated[LearnerCall, Depends(_learner_call, scope="function")]


async def on_reader(session: Session, work: Callable[[], T]) -> T:
    """Run a read-mode request's `work` where it costs least: on SQLite on the event loop (a read transaction in
    WAL mode waits for no lock, and the pool holds more connections than there are threads, as for the principal's
    lookup), on PostgreSQL in a worker thread (each statement is a round trip to the server)."""
    if session.info.get(READ_MODE) and is_sqlite(session.get_bind()):
        return work()
    return await run_in_threadpool(work)


def _audit_refusal(request: Request, principal: Principal, session: Session, allowed: frozenset[str]) -> None:
    """Audit the refusal in the request's own session: nothing was written yet, so roll back (releasing SQLite's
    write lock, which a second connection would wait on), record, commit."""
    session.rollback()
    template = getattr(request.scope.get("route"), "path", request.url.path)
    record(
        session,
        actor=principal,
        action=f"http.{request.method.lower()} {template}"[:60],
        outcome="denied",
        detail={"allowed_roles": sorted(allowed), "path": request.url.path[:200]},
    )
    session.commit()


async def public() -> None:
    """Marks a route as open to anyone (discovery, DID document, verification, sign-in)."""


public.is_public = True  # type: ignore[attr-defined]
