"""Sign-in (OAuth2 password flow) for staff and learners."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel
from sqlmodel import select

from node.audit.service import record
from node.deps import CtxDep, Principal, SessionDep, public
from node.errors import Unauthorized
from node.models import Learner, StaffAccount
from node.roles import Role
from node.security.passwords import verify_password
from node.security.tokens import issue_token

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


class TokenPublic(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    roles: list[str]


@router.post("/token", response_model=TokenPublic, dependencies=[Depends(public)])
def sign_in(form: Annotated[OAuth2PasswordRequestForm, Depends()], ctx: CtxDep, session: SessionDep) -> TokenPublic:
    """Staff sign in with their user name; learners with their account number."""
    ttl = ctx.settings.security.token_ttl_seconds
    staff = session.exec(select(StaffAccount).where(StaffAccount.username == form.username)).first()
    if staff is not None:
        if not staff.active or not verify_password(staff.password_hash, form.password):
            record(session, actor=None, action="auth.sign_in", outcome="denied", target_type="staff",
                   target_id=staff.id)
            raise Unauthorized("wrong user name or password", code="invalid_credentials")
        principal = Principal("staff", staff.id, staff.username, tuple(staff.roles), staff.organisation_id)
        record(session, actor=principal, action="auth.sign_in", target_type="staff", target_id=staff.id)
        token = issue_token(secret=ctx.token_secret, issuer=ctx.node_id, subject=f"staff:{staff.id}",
                            roles=list(staff.roles), ttl=ttl)
        return TokenPublic(access_token=token, expires_in=ttl, roles=list(staff.roles))
    learner = session.exec(select(Learner).where(Learner.account_no == form.username)).first()
    if learner is None or not verify_password(learner.password_hash if learner else None, form.password):
        raise Unauthorized("wrong user name or password", code="invalid_credentials")
    token = issue_token(secret=ctx.token_secret, issuer=ctx.node_id, subject=f"learner:{learner.id}",
                        roles=[Role.LEARNER], ttl=ttl)
    return TokenPublic(access_token=token, expires_in=ttl, roles=[Role.LEARNER])
