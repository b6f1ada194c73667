"""The admin API: organisations, staff accounts, institution API keys, roles (node administrators).

Every change is audited in the request's unit of work; refused changes are audited as refusals. The same
operations exist as `creditnode org|staff|apikeys|roles` (node/org/cli.py). Rules: docs/organisations.md.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from sqlmodel import Session

from node.audit.service import record, refusals_recorded
from node.deposits.routing import reroute_queue
from node.deps import Principal, SessionDep, public, require_roles
from node.models import ApiKey, Organisation, StaffAccount
from node.org import repository as repo
from node.org import service
from node.org.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPublic,
    Deactivation,
    OrganisationCreate,
    OrganisationMove,
    OrganisationPublic,
    OrganisationUpdate,
    OrgCode,
    PasswordIssued,
    PasswordReset,
    RoleOperation,
    RolePublic,
    RolesChange,
    ServicePoint,
    StaffCreate,
    StaffCreated,
    StaffPublic,
    StaffUpdate,
)
from node.roles import ALL_STAFF_ROLES, ROLE_DESCRIPTIONS, ROLE_ORGANISATION_KINDS, Role, operations_by_role

__all__ = ["organisation_views", "router", "staff_views"]

router = APIRouter(prefix="/api/v1", tags=["administration"])
Admin = Annotated[Principal, Depends(require_roles(Role.NODE_ADMIN))]
AnyStaff = Annotated[Principal, Depends(require_roles(*ALL_STAFF_ROLES))]
CodePath = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")]
UsernamePath = Annotated[str, Path(min_length=3, max_length=64, pattern=r"^[a-z][a-z0-9_.-]*$")]
PrefixPath = Annotated[str, Path(min_length=1, max_length=16, pattern=r"^[0-9a-f]+$")]
Limit = Annotated[int, Query(ge=1, le=500)]


def organisation_views(session: Session, orgs: list[Organisation]) -> list[OrganisationPublic]:
    parents = repo.codes_by_id(session, {o.parent_id for o in orgs})
    return [OrganisationPublic(id=o.id, code=o.code, name=o.name, kind=o.kind, institution_type=o.institution_type,
                               parent_id=o.parent_id, parent_code=parents.get(o.parent_id), active=o.active)
            for o in orgs]


def staff_views(session: Session, members: list[StaffAccount]) -> list[StaffPublic]:
    orgs = repo.codes_by_id(session, {m.organisation_id for m in members})
    return [StaffPublic(id=m.id, username=m.username, display_name=m.display_name, roles=sorted(m.roles),
                        organisation_id=m.organisation_id, organisation_code=orgs.get(m.organisation_id),
                        active=m.active, created_at=m.created_at) for m in members]


def api_key_views(session: Session, keys: list[ApiKey]) -> list[ApiKeyPublic]:
    orgs = repo.codes_by_id(session, {k.organisation_id for k in keys})
    return [ApiKeyPublic(id=k.id, prefix=k.prefix, organisation_id=k.organisation_id,
                         organisation_code=orgs.get(k.organisation_id), label=k.label, roles=list(k.roles),
                         created_at=k.created_at, revoked_at=k.revoked_at) for k in keys]


# -- organisations -----------------------------------------------------------------------------------------


@router.post("/admin/organisations", response_model=OrganisationPublic, status_code=201)
def add_organisation(body: OrganisationCreate, session: SessionDep, admin: Admin) -> OrganisationPublic:
    """Create an organisation: a branch (under the centre), an outlet (under a branch) or an institution."""
    with refusals_recorded(session, actor=admin, action="organisation.create", target_type="organisation",
                           target_id=body.code):
        org = service.create_organisation(session, **body.model_dump())
    view = organisation_views(session, [org])[0]
    record(session, actor=admin, action="organisation.create", target_type="organisation", target_id=org.code,
           detail={"kind": org.kind, "parent": view.parent_code, "institution_type": org.institution_type})
    return view


@router.get("/admin/organisations", response_model=list[OrganisationPublic])
def list_organisations(
    session: SessionDep, _staff: AnyStaff,
    kind: Annotated[str | None, Query(max_length=20)] = None,
    parent: Annotated[str | None, Query(max_length=32, description="the parent's code")] = None,
    active: bool | None = None,
    after: Annotated[str | None, Query(max_length=32, description="the last code of the previous page")] = None,
    limit: Limit = 100,
) -> list[OrganisationPublic]:
    """Organisations by code, with filters and keyset paging (`after`)."""
    parent_id = service.organisation_by_code(session, parent).id if parent else None
    orgs = repo.organisations(session, kind=kind, parent_id=parent_id, active=active, after=after, limit=limit)
    return organisation_views(session, orgs)


@router.get("/admin/organisations/{code}", response_model=OrganisationPublic)
def read_organisation(code: CodePath, session: SessionDep, _staff: AnyStaff) -> OrganisationPublic:
    """One organisation, with its parent's code and whether it is active."""
    return organisation_views(session, [service.organisation_by_code(session, code)])[0]


@router.patch("/admin/organisations/{code}", response_model=OrganisationPublic)
def update_organisation(code: CodePath, body: OrganisationUpdate, session: SessionDep,
                        admin: Admin) -> OrganisationPublic:
    """Rename an organisation, or change an institution's type."""
    with refusals_recorded(session, actor=admin, action="organisation.update", target_type="organisation",
                           target_id=code):
        org = service.organisation_by_code(session, code)
        changed = service.update_organisation(session, org, changes=body.model_dump(exclude_unset=True))
    record(session, actor=admin, action="organisation.update", target_type="organisation", target_id=code,
           detail={"changed": changed})
    return organisation_views(session, [org])[0]


@router.post("/admin/organisations/{code}/move", response_model=OrganisationPublic)
def move_organisation(code: CodePath, body: OrganisationMove, session: SessionDep,
                      admin: Admin) -> OrganisationPublic:
    """Put an organisation under another parent (e.g. an outlet under another branch). Applications already
    routed keep their branch."""
    with refusals_recorded(session, actor=admin, action="organisation.move", target_type="organisation",
                           target_id=code):
        org = service.organisation_by_code(session, code)
        old, new = service.move_organisation(session, org, parent_code=body.parent_code)
    record(session, actor=admin, action="organisation.move", target_type="organisation", target_id=code,
           detail={"from": old, "to": new})
    return organisation_views(session, [org])[0]


@router.post("/admin/organisations/{code}/deactivate", response_model=OrganisationPublic)
def deactivate_organisation(code: CodePath, session: SessionDep, admin: Admin,
                            body: Deactivation | None = None) -> OrganisationPublic:
    """Deactivate: its staff and API keys stop working, it takes no new applications. Its open applications
    stay with it for the centre to decide, or move to `reroute_to`."""
    reroute_to = body.reroute_to if body else None
    with refusals_recorded(session, actor=admin, action="organisation.deactivate", target_type="organisation",
                           target_id=code):
        org = service.organisation_by_code(session, code)
        service.deactivate_organisation(session, org)
        moved = reroute_queue(session, branch=org, to_code=reroute_to, actor=admin) if reroute_to else []
    record(session, actor=admin, action="organisation.deactivate", target_type="organisation", target_id=code,
           detail={"rerouted_to": reroute_to, "applications_moved": len(moved)})
    return organisation_views(session, [org])[0]


@router.post("/admin/organisations/{code}/activate", response_model=OrganisationPublic)
def activate_organisation(code: CodePath, session: SessionDep, admin: Admin) -> OrganisationPublic:
    """Activate a deactivated organisation again (its parent must be active)."""
    with refusals_recorded(session, actor=admin, action="organisation.activate", target_type="organisation",
                           target_id=code):
        org = service.organisation_by_code(session, code)
        service.activate_organisation(session, org)
    record(session, actor=admin, action="organisation.activate", target_type="organisation", target_id=code)
    return organisation_views(session, [org])[0]


@router.get("/service-points", response_model=list[ServicePoint], dependencies=[Depends(public)])
def list_service_points(session: SessionDep) -> list[ServicePoint]:
    """The active branches and outlets where learners are served (a learner may name a branch when applying)."""
    points = [o for kind in ("branch", "outlet") for o in repo.organisations(session, kind=kind, active=True,
                                                                              limit=10_000)]
    parents = repo.codes_by_id(session, {o.parent_id for o in points})
    return [ServicePoint(code=o.code, name=o.name, kind=o.kind, parent_code=parents.get(o.parent_id))
            for o in points]


# -- staff ---------------------------------------------------------------------------------------------------


@router.post("/admin/staff", response_model=StaffCreated, status_code=201)
def add_staff(body: StaffCreate, session: SessionDep, admin: Admin) -> StaffCreated:
    """Create a staff account (in the centre unless `organisation_code` names another). Without a password,
    one is generated and returned once."""
    with refusals_recorded(session, actor=admin, action="staff.create", target_type="staff",
                           target_id=body.username):
        staff, generated = service.add_staff(session, **body.model_dump())
    record(session, actor=admin, action="staff.create", target_type="staff", target_id=staff.id,
           detail={"username": staff.username, "roles": staff.roles, "organisation_id": staff.organisation_id,
                   "password_generated": generated is not None})
    return StaffCreated(**staff_views(session, [staff])[0].model_dump(), initial_password=generated)


@router.get("/admin/staff", response_model=list[StaffPublic])
def list_staff(
    session: SessionDep, _admin: Admin,
    organisation: Annotated[OrgCode | None, Query(description="an organisation's code")] = None,
    role: Annotated[str | None, Query(max_length=40)] = None,
    active: bool | None = None,
    after: Annotated[str | None, Query(max_length=64, description="the last user name of the previous page")] = None,
    limit: Limit = 100,
) -> list[StaffPublic]:
    """Staff accounts by user name, with filters and keyset paging (`after`)."""
    org_id = service.organisation_by_code(session, organisation).id if organisation else None
    if role is not None and role not in ALL_STAFF_ROLES:
        return []
    members = repo.staff_members(session, organisation_id=org_id, role=role, active=active, after=after, limit=limit)
    return staff_views(session, members)


@router.get("/admin/staff/{username}", response_model=StaffPublic)
def read_staff(username: UsernamePath, session: SessionDep, _admin: Admin) -> StaffPublic:
    """One staff account: roles, organisation, whether it is active."""
    return staff_views(session, [service.staff_by_username(session, username)])[0]


@router.patch("/admin/staff/{username}", response_model=StaffPublic)
def update_staff(username: UsernamePath, body: StaffUpdate, session: SessionDep, admin: Admin) -> StaffPublic:
    """Rename a staff member, or move them to another organisation (their roles must fit there)."""
    with refusals_recorded(session, actor=admin, action="staff.update", target_type="staff", target_id=username):
        staff = service.staff_by_username(session, username)
        changed = service.update_staff(session, staff, changes=body.model_dump(exclude_unset=True))
    record(session, actor=admin, action="staff.update", target_type="staff", target_id=staff.id,
           detail={"username": username, "changed": changed})
    return staff_views(session, [staff])[0]


@router.post("/admin/staff/{username}/roles", response_model=StaffPublic)
def change_staff_roles(username: UsernamePath, body: RolesChange, session: SessionDep, admin: Admin) -> StaffPublic:
    """Set a staff member's roles, or add and remove some. Effective at their next request."""
    with refusals_recorded(session, actor=admin, action="staff.roles", target_type="staff", target_id=username):
        staff = service.staff_by_username(session, username)
        old, new = service.change_roles(session, staff, set_to=body.set, add=body.add, remove=body.remove)
    record(session, actor=admin, action="staff.roles", target_type="staff", target_id=staff.id,
           detail={"username": username, "from": old, "to": new})
    return staff_views(session, [staff])[0]


def _set_active(session: Session, admin: Principal, username: str, *, active: bool) -> StaffPublic:
    action = "staff.enable" if active else "staff.disable"
    with refusals_recorded(session, actor=admin, action=action, target_type="staff", target_id=username):
        staff = service.staff_by_username(session, username)
        service.set_staff_active(session, staff, active=active)
    record(session, actor=admin, action=action, target_type="staff", target_id=staff.id,
           detail={"username": username})
    return staff_views(session, [staff])[0]


@router.post("/admin/staff/{username}/disable", response_model=StaffPublic)
def disable_staff(username: UsernamePath, session: SessionDep, admin: Admin) -> StaffPublic:
    """Disable an account: every request it makes is refused from now on (`account_disabled`)."""
    return _set_active(session, admin, username, active=False)


@router.post("/admin/staff/{username}/enable", response_model=StaffPublic)
def enable_staff(username: UsernamePath, session: SessionDep, admin: Admin) -> StaffPublic:
    """Enable a disabled account again."""
    return _set_active(session, admin, username, active=True)


@router.post("/admin/staff/{username}/reset-password", response_model=PasswordIssued)
def reset_staff_password(username: UsernamePath, session: SessionDep, admin: Admin,
                         body: PasswordReset | None = None) -> PasswordIssued:
    """Set a new password (generated and returned once, unless given); the account's sessions end."""
    with refusals_recorded(session, actor=admin, action="staff.reset_password", target_type="staff",
                           target_id=username):
        staff = service.staff_by_username(session, username)
        generated = service.reset_password(session, staff, password=body.password if body else None)
    record(session, actor=admin, action="staff.reset_password", target_type="staff", target_id=staff.id,
           detail={"username": username, "generated": generated is not None})
    return PasswordIssued(username=username, password=generated)


# -- API keys ------------------------------------------------------------------------------------------------


@router.post("/admin/api-keys", response_model=ApiKeyCreated, status_code=201)
def add_api_key(body: ApiKeyCreate, session: SessionDep, admin: Admin) -> ApiKeyCreated:
    """A key for an institution's system (bulk deposits); the key is returned once, only its hash is kept."""
    with refusals_recorded(session, actor=admin, action="api_key.create", target_type="organisation",
                           target_id=body.organisation_code):
        row, key = service.create_api_key(session, organisation_code=body.organisation_code, label=body.label,
                                          created_by=admin.id if admin.kind == "staff" else None)
    record(session, actor=admin, action="api_key.create", target_type="api_key", target_id=row.prefix,
           detail={"organisation_id": row.organisation_id, "label": row.label})
    return ApiKeyCreated(id=row.id, prefix=row.prefix, key=key, organisation_id=row.organisation_id,
                         roles=row.roles, created_at=row.created_at)


@router.get("/admin/api-keys", response_model=list[ApiKeyPublic])
def list_api_keys(
    session: SessionDep, _admin: Admin,
    organisation: Annotated[OrgCode | None, Query(description="an institution's code")] = None,
    active: bool | None = None,
) -> list[ApiKeyPublic]:
    """API keys (never the keys themselves: their prefixes)."""
    org_id = service.organisation_by_code(session, organisation).id if organisation else None
    return api_key_views(session, repo.api_keys(session, organisation_id=org_id, active=active))


@router.post("/admin/api-keys/{prefix}/revoke", response_model=ApiKeyPublic)
def revoke_api_key(prefix: PrefixPath, session: SessionDep, admin: Admin) -> ApiKeyPublic:
    """Revoke a key: it stops working at once. Revoking a revoked key changes nothing."""
    with refusals_recorded(session, actor=admin, action="api_key.revoke", target_type="api_key", target_id=prefix):
        row = service.api_key_by_prefix(session, prefix)
        changed = service.revoke_api_key(session, row)
    record(session, actor=admin, action="api_key.revoke", target_type="api_key", target_id=prefix,
           detail={"already_revoked": not changed})
    return api_key_views(session, [row])[0]


# -- roles ---------------------------------------------------------------------------------------------------


def role_table(routes: list) -> list[RolePublic]:
    """Each role, what it is for, where it may be held, and the operations it may call."""
    by_role, _public = operations_by_role(routes)
    return [
        RolePublic(role=role, description=description,
                   organisation_kinds=sorted(ROLE_ORGANISATION_KINDS.get(role, ())),
                   operations=[RoleOperation(method=o.method, path=o.path, summary=o.summary)
                               for o in by_role.get(role, [])])
        for role, description in ROLE_DESCRIPTIONS.items()
    ]


@router.get("/admin/roles", response_model=list[RolePublic])
def list_roles(request: Request, _staff: AnyStaff) -> list[RolePublic]:
    """Each role with what it may do, derived from the routes' declared roles."""
    return role_table(request.app.routes)
