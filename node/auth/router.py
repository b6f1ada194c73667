"""Sign-in (OAuth2 password flow), sign-out and password change, for staff and learners.

Each attempt is rate-limited per client (node.security.ratelimit) and counted per account in the database
(node.auth.service.Throttle); every outcome is audited. The read transaction ends before the password is
hashed, so no database lock or connection is held for the length of an Argon2 computation (passwords.py).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, Field
from sqlmodel import Session

from node.audit.service import record
from node.auth.service import (
    Account,
    SignInAttempt,
    Throttle,
    account_key,
    find_sign_in,
    invalidate_tokens,
    principal_of,
    record_failure,
)
from node.context import NodeContext
from node.deps import CtxDep, Principal, SessionDep, public, require_roles
from node.errors import BadRequest, TooManyRequests, Unauthorized
from node.models import Learner, StaffAccount
from node.roles import ALL_STAFF_ROLES, Role
from node.security.passwords import hash_password, verify_password
from node.security.ratelimit import per_client_limit
from node.security.tokens import issue_token

__all__ = ["TokenPublic", "issue_token_for", "router"]

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
sign_in_limit = per_client_limit("sign_in", lambda s: s.ratelimit.sign_in)
SignedIn = Annotated[Principal, Depends(require_roles(Role.LEARNER, *sorted(ALL_STAFF_ROLES)))]


class TokenPublic(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    roles: list[str]


class PasswordChange(BaseModel):
    current_password: str = Field(min_length=1, max_length=200, repr=False)
    new_password: str = Field(min_length=8, max_length=200, repr=False)


def issue_token_for(ctx: NodeContext, account: Account) -> TokenPublic:
    ttl = ctx.settings.security.token_ttl_seconds
    who = principal_of(account)
    token = issue_token(secret=ctx.token_secret, issuer=ctx.node_id, subject=f"{who.kind}:{account.id}",
                        roles=list(who.roles), ttl=ttl, version=account.token_version)
    return TokenPublic(access_token=token, expires_in=ttl, roles=list(who.roles))


def check_unlocked(session: Session, ctx: NodeContext, attempt: SignInAttempt, *, action: str, client: str) -> None:
    """Refuse a locked account (or name) before any password work; the refusal is audited and committed."""
    try:
        Throttle(session, ctx.settings.accounts).check(attempt.throttle_key)
    except TooManyRequests as exc:
        target_type, target_id = attempt.target
        record(session, actor=None, action=action, outcome="denied", target_type=target_type,
               target_id=target_id, detail={"code": exc.code, "client": client})
        session.commit()
        raise


@router.post("/token", response_model=TokenPublic, dependencies=[Depends(public), Depends(sign_in_limit)])
def sign_in(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    request: Request,
    ctx: CtxDep,
    session: SessionDep,
    id_type: Annotated[str | None, Form(max_length=40, description="with an ID number: its type")] = None,
) -> TokenPublic:
    """Staff sign in with their user name; learners with their account number or ID number (`id_type`
    defaults to resident_id). Wrong name, wrong password and an account not yet activated get the same
    answer, `401 invalid_credentials`; too many failures lock the account for a while (`429 account_locked`)."""
    client = ctx.rate_limits.client_of(request)
    attempt = find_sign_in(session, ctx, username=form.username, id_type=id_type)
    check_unlocked(session, ctx, attempt, action="auth.sign_in", client=client)
    session.commit()  # end the read transaction before hashing
    if not verify_password(attempt.password_hash, form.password, gate=ctx.password_gate):
        record_failure(session, ctx, attempt, action="auth.sign_in", client=client, code="invalid_credentials")
        session.commit()
        raise Unauthorized("wrong user name or password, or the account is not activated yet",
                           code="invalid_credentials")
    account = attempt.account
    assert account is not None  # a password hash came from an account
    Throttle(session, ctx.settings.accounts).success(attempt.throttle_key)
    target_type, target_id = attempt.target
    record(session, actor=principal_of(account), action="auth.sign_in", target_type=target_type,
           target_id=target_id, detail={"client": client})
    return issue_token_for(ctx, account)


def _own_account(session: Session, who: Principal) -> Account:
    model = {"staff": StaffAccount, "learner": Learner}.get(who.kind)
    account = session.get(model, who.id) if model else None
    if account is None:
        raise BadRequest("signing out and changing a password are for people signed in with a token; an "
                         "institution's API key is revoked by an administrator instead", code="token_required")
    return account


@router.post("/logout", status_code=204)
def sign_out(session: SessionDep, who: SignedIn) -> Response:
    """Revoke every token of the caller's account (on every device)."""
    account = _own_account(session, who)
    invalidate_tokens(session, account)
    record(session, actor=who, action="auth.logout", target_type=who.kind, target_id=who.id)
    return Response(status_code=204)


@router.post("/password", response_model=TokenPublic, dependencies=[Depends(sign_in_limit)])
def change_password(body: PasswordChange, request: Request, ctx: CtxDep, session: SessionDep,
                    who: SignedIn) -> TokenPublic:
    """Change one's own password (the current one is required). Every earlier token is revoked; the answer
    carries a fresh token. Wrong current passwords count towards the account's lockout like failed sign-ins."""
    client = ctx.rate_limits.client_of(request)
    account = _own_account(session, who)
    attempt = SignInAttempt(account, account_key("sign_in", account), account.password_hash)
    check_unlocked(session, ctx, attempt, action="auth.password_change", client=client)
    session.commit()  # end the read transaction before hashing
    if not verify_password(attempt.password_hash, body.current_password, gate=ctx.password_gate):
        record_failure(session, ctx, attempt, action="auth.password_change", client=client, code="wrong_password")
        session.commit()
        raise BadRequest("the current password is not right", code="wrong_password")
    new_hash = hash_password(body.new_password, gate=ctx.password_gate)
    account.password_hash = new_hash
    session.add(account)
    invalidate_tokens(session, account)
    Throttle(session, ctx.settings.accounts).success(attempt.throttle_key)
    record(session, actor=who, action="auth.password_change", target_type=who.kind, target_id=who.id,
           detail={"client": client})
    return issue_token_for(ctx, account)
