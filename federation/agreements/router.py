"""Admin API for agreements under `/api/v1/federation/agreements` (role federation_admin, every action audited),
and the inbox handlers for `agreement.propose` / `agreement.sign` (registered on import)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import select

from federation.agreements import service
from federation.agreements.document import AgreementInvalid
from federation.inbox import register_handler
from federation.service import register_feature
from node.audit.service import record
from node.deps import CtxDep, Principal, SessionDep, require_roles
from node.errors import NotFound
from node.models import AgreementVersion
from node.roles import Role

__all__ = ["ROUTERS", "router"]

register_handler("agreement.propose", service.handle_propose)
register_handler("agreement.sign", service.handle_sign)
register_feature("agreements")  # discovery lists it (docs/federation.md §1)

Admin = Annotated[Principal, Depends(require_roles(Role.FEDERATION_ADMIN))]
router = APIRouter(prefix="/api/v1/federation/agreements", tags=["federation"])


class Change(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base: str = Field(min_length=64, max_length=64)
    changes: dict = Field(default_factory=dict)


class Base(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base: str = Field(min_length=64, max_length=64)


class SignRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hash: str = Field(min_length=64, max_length=64)


def _view(row: AgreementVersion) -> dict:
    return {"agreement": row.agreement, "version": row.version, "hash": row.hash, "previous": row.previous,
            "proposer": row.proposer, "status": row.status, "complete": row.complete,
            "signers": [p.get("verificationMethod", "").split("#", 1)[0] for p in row.document.get("proof", [])],
            "document": row.document, "updated_at": row.updated_at.isoformat()}


def _audit(session, admin: Principal, verb: str, row: AgreementVersion) -> dict:
    record(session, actor=admin, action=f"federation.agreement.{verb}", target_type="agreement",
           target_id=row.agreement, detail={"version": row.version, "hash": row.hash, "status": row.status})
    return _view(row)


@router.get("")
def list_agreements(session: SessionDep, admin: Admin) -> list[dict]:
    """Every agreement this node holds: its head version and the version in force (`null` if none is
    fully signed yet)."""
    rows = session.exec(select(AgreementVersion)).all()
    ids = sorted({r.agreement for r in rows})
    out = []
    for agreement in ids:
        versions = service.history(session, agreement)
        in_force = [r for r in versions if r.complete]
        out.append({"agreement": agreement, "head": _view(versions[-1]),
                    "in_force": _view(in_force[-1]) if in_force else None})
    return out


@router.get("/{agreement}")
def get_agreement(agreement: str, ctx: CtxDep, session: SessionDep, admin: Admin) -> dict:
    """One agreement's version history and the verification of its proofs; 404 if unknown."""
    versions = service.history(session, agreement)
    if not versions:
        raise NotFound(f"no agreement {agreement!r}", code="agreement_not_found")
    return {"agreement": agreement, "history": [_view(r) for r in versions],
            "verification": service.verify_history(session, ctx, agreement)}


@router.post("")
def propose(ctx: CtxDep, session: SessionDep, admin: Admin, draft: Annotated[dict, Body()]) -> dict:
    """Propose version 1 of a new agreement: signed by this node, sent to the other parties, audited.
    Refused if the agreement already exists or the draft is invalid."""
    return _audit(session, admin, "propose", service.propose(session, ctx, draft))


@router.post("/{agreement}/counter")
def counter(agreement: str, request: Change, ctx: CtxDep, session: SessionDep, admin: Admin) -> dict:
    """Counter-propose the pending head (`base`, its hash) with `changes`: a new version signed and sent;
    refused if the head is stale or already signed by every party. Audited."""
    row = service.counter(session, ctx, agreement, base=request.base, changes=request.changes)
    return _audit(session, admin, "counter", row)


@router.post("/{agreement}/sign")
def sign(agreement: str, request: SignRequest, ctx: CtxDep, session: SessionDep, admin: Admin) -> dict:
    """Add this node's proof to the head version (`hash`) and send it to the other parties; a version
    already signed by this node is returned unchanged. Audited."""
    return _audit(session, admin, "sign", service.sign(session, ctx, agreement, version_hash=request.hash))


@router.post("/{agreement}/amend")
def amend(agreement: str, request: Change, ctx: CtxDep, session: SessionDep, admin: Admin) -> dict:
    """A new version of the fully-signed agreement (`base`) with `changes`, status active; the status
    itself is changed by suspend or terminate. Refused while negotiating or terminated. Audited."""
    if "status" in request.changes:
        raise AgreementInvalid("use suspend or terminate to change the status")
    row = service.amend(session, ctx, agreement, base=request.base, changes=request.changes, status="active")
    return _audit(session, admin, "amend", row)


@router.post("/{agreement}/suspend")
def suspend(agreement: str, request: Base, ctx: CtxDep, session: SessionDep, admin: Admin) -> dict:
    """A new version of the fully-signed agreement (`base`) with status suspended, signed and sent to
    the other parties. Audited."""
    row = service.amend(session, ctx, agreement, base=request.base, changes={}, status="suspended")
    return _audit(session, admin, "suspend", row)


@router.post("/{agreement}/terminate")
def terminate(agreement: str, request: Base, ctx: CtxDep, session: SessionDep, admin: Admin) -> dict:
    """A new version of the fully-signed agreement (`base`) with status terminated, signed and sent;
    a terminated agreement cannot be amended again. Audited."""
    row = service.amend(session, ctx, agreement, base=request.base, changes={}, status="terminated")
    return _audit(session, admin, "terminate", row)


ROUTERS = [router]
