"""Organisations, staff accounts and institution API keys (node administrators)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from sqlmodel import select

from node.audit.service import record
from node.deps import Principal, SessionDep, require_roles
from node.models import Organisation, StaffAccount
from node.org.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    OrganisationCreate,
    OrganisationPublic,
    StaffCreate,
    StaffPublic,
)
from node.org.service import create_api_key, create_organisation, create_staff
from node.roles import ALL_STAFF_ROLES, Role

router = APIRouter(prefix="/api/v1/admin", tags=["administration"])
Admin = Annotated[Principal, Depends(require_roles(Role.NODE_ADMIN))]
AnyStaff = Annotated[Principal, Depends(require_roles(*ALL_STAFF_ROLES))]


@router.post("/organisations", response_model=OrganisationPublic, status_code=201)
def add_organisation(body: OrganisationCreate, session: SessionDep, admin: Admin) -> Organisation:
    org = create_organisation(session, **body.model_dump())
    record(session, actor=admin, action="organisation.create", target_type="organisation", target_id=org.code)
    return org


@router.get("/organisations", response_model=list[OrganisationPublic])
def list_organisations(session: SessionDep, _staff: AnyStaff) -> list[Organisation]:
    return list(session.exec(select(Organisation).order_by(Organisation.code)))


@router.post("/staff", response_model=StaffPublic, status_code=201)
def add_staff(body: StaffCreate, session: SessionDep, admin: Admin) -> StaffAccount:
    staff = create_staff(session, **body.model_dump())
    record(session, actor=admin, action="staff.create", target_type="staff", target_id=staff.id,
           detail={"roles": staff.roles})
    return staff


@router.get("/staff", response_model=list[StaffPublic])
def list_staff(session: SessionDep, _admin: Admin) -> list[StaffAccount]:
    return list(session.exec(select(StaffAccount).order_by(StaffAccount.username)))


@router.post("/api-keys", response_model=ApiKeyCreated, status_code=201)
def add_api_key(body: ApiKeyCreate, session: SessionDep, admin: Admin) -> ApiKeyCreated:
    row, key = create_api_key(session, organisation_code=body.organisation_code, label=body.label,
                              created_by=admin.id)
    record(session, actor=admin, action="api_key.create", target_type="api_key", target_id=row.prefix,
           detail={"organisation_id": row.organisation_id})
    return ApiKeyCreated(id=row.id, prefix=row.prefix, key=key, organisation_id=row.organisation_id,
                         roles=row.roles, created_at=row.created_at)
