"""Organisations, staff accounts and API keys: the rules operators act under (docs/organisations.md).

The organisation tree is the seeds': one centre (管理中心), district branches (区县分部) under it, outlets (网点)
under branches; institutions (universities, the exam authority, appraisal centres, training bodies) stand apart or
under any of those. A role may be held only in the kinds of organisation `node.roles.ROLE_ORGANISATION_KINDS`
names. Services flush, never commit; the caller (request, CLI command) audits and commits once.
"""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from node.errors import BadRequest, Conflict, NotFound
from node.models import ApiKey, Organisation, StaffAccount, utcnow
from node.org import repository as repo
from node.roles import ALL_STAFF_ROLES, ROLE_ORGANISATION_KINDS, Role
from node.security.passwords import hash_password

__all__ = [
    "INSTITUTION_TYPES",
    "ORG_KINDS",
    "PARENT_KINDS",
    "activate_organisation",
    "add_staff",
    "api_key_by_prefix",
    "change_roles",
    "create_api_key",
    "create_organisation",
    "create_staff",
    "deactivate_organisation",
    "move_organisation",
    "new_password",
    "organisation_by_code",
    "reset_password",
    "revoke_api_key",
    "set_staff_active",
    "staff_by_username",
    "update_organisation",
    "update_staff",
]

ORG_KINDS: dict[str, str] = {
    "centre": "the region's credit-bank centre (管理中心): second review, standards, administration",
    "branch": "a district branch (区县分部) under the centre: first review of its queue, counters for the public",
    "outlet": "an outlet (网点) under a branch, e.g. at a university: opens accounts, applies for learners",
    "institution": "an awarding body that deposits outcomes in bulk (see institution types)",
}
INSTITUTION_TYPES: dict[str, str] = {
    "university": "a university or college (学历教育)",
    "open_university": "an open university (开放大学)",
    "exam_authority": "the self-study examination authority (自学考试)",
    "appraisal_centre": "a vocational skills appraisal centre (职业技能鉴定)",
    "training_body": "a vocational training body (职业培训)",
    "community_college": "a community college or school (社区教育)",
}
# kind -> kinds its parent may be (None: no parent)
PARENT_KINDS: dict[str, frozenset[str | None]] = {
    "centre": frozenset({None}),
    "branch": frozenset({"centre"}),
    "outlet": frozenset({"branch"}),
    "institution": frozenset({None, "centre", "branch", "outlet"}),
}


def new_password() -> str:
    """An initial or reset password, shown once."""
    return secrets.token_urlsafe(12)


def _revoke_sessions(session: Session, staff: StaffAccount) -> None:
    """End the staff member's signed-in sessions: their tokens stop working (the per-account token version)."""
    from node.auth.service import invalidate_tokens

    if staff.id is not None:
        invalidate_tokens(session, staff)


# -- organisations -------------------------------------------------------------------------------------


def organisation_by_code(session: Session, code: str) -> Organisation:
    org = repo.organisation_by_code(session, code)
    if org is None:
        raise NotFound(f"no organisation with code {code!r}")
    return org


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _check_parent(*, kind: str, parent: Organisation | None, org: Organisation | None = None) -> None:
    allowed = PARENT_KINDS[kind]
    parent_kind = parent.kind if parent is not None else None
    if parent_kind not in allowed:
        wanted = " or ".join("no parent" if k is None else _a(k) for k in sorted(allowed, key=str))
        raise BadRequest(f"{_a(kind)}'s parent must be {wanted}", code="invalid_parent",
                         detail={"kind": kind, "parent_kind": parent_kind})
    if parent is not None and not parent.active:
        raise Conflict(f"organisation {parent.code!r} is deactivated", code="organisation_inactive")
    if org is not None and parent is not None and parent.id == org.id:
        raise BadRequest("an organisation cannot be its own parent", code="invalid_parent")


def create_organisation(
    session: Session, *, code: str, name: str, kind: str, institution_type: str | None = None,
    parent_code: str | None = None,
) -> Organisation:
    """A new organisation. A branch without a named parent goes under the centre."""
    if kind not in ORG_KINDS:
        raise BadRequest(f"kind is one of {', '.join(ORG_KINDS)}", code="invalid_kind")
    if institution_type is not None and (kind != "institution" or institution_type not in INSTITUTION_TYPES):
        raise BadRequest(f"institution_type is for institutions, one of {', '.join(INSTITUTION_TYPES)}",
                         code="invalid_kind")
    if repo.organisation_by_code(session, code) is not None:
        raise Conflict(f"organisation code {code!r} is taken", code="duplicate")
    if kind == "centre" and repo.centre(session) is not None:
        raise Conflict("the node has its centre already", code="duplicate")
    if parent_code:
        parent = organisation_by_code(session, parent_code)
    else:
        parent = repo.centre(session) if kind == "branch" else None
    _check_parent(kind=kind, parent=parent)
    org = Organisation(code=code, name=name, kind=kind, institution_type=institution_type,
                       parent_id=parent.id if parent else None)
    try:
        with session.begin_nested():
            session.add(org)
            session.flush()
    except IntegrityError:  # created concurrently
        raise Conflict(f"organisation code {code!r} is taken", code="duplicate") from None
    return org


def update_organisation(session: Session, org: Organisation, *, changes: dict) -> dict:
    """Rename an organisation or change an institution's type; returns {field: [old, new]} of what changed."""
    if "institution_type" in changes and (
        org.kind != "institution" or changes["institution_type"] not in (None, *INSTITUTION_TYPES)
    ):
        raise BadRequest(f"institution_type is for institutions, one of {', '.join(INSTITUTION_TYPES)}",
                         code="invalid_kind")
    changed = {}
    for field in ("name", "institution_type"):
        if field in changes and changes[field] != getattr(org, field):
            changed[field] = [getattr(org, field), changes[field]]
            setattr(org, field, changes[field])
    session.add(org)
    session.flush()
    return changed


def move_organisation(
    session: Session, org: Organisation, *, parent_code: str | None
) -> tuple[str | None, str | None]:
    """Put an organisation under another parent (an outlet under another branch, an institution elsewhere).
    Applications already routed keep their branch (the centre re-routes them if it wishes).
    Returns (old parent code, new parent code)."""
    parent = organisation_by_code(session, parent_code) if parent_code else None
    _check_parent(kind=org.kind, parent=parent, org=org)
    old = repo.codes_by_id(session, {org.parent_id}).get(org.parent_id) if org.parent_id else None
    org.parent_id = parent.id if parent else None
    session.add(org)
    session.flush()
    return old, parent.code if parent else None


def deactivate_organisation(session: Session, org: Organisation) -> None:
    """Deactivate: its staff and API keys can no longer act, it takes no new applications and no new staff.
    Its children must be moved or deactivated first; the centre cannot be deactivated."""
    if org.kind == "centre":
        raise Conflict("the centre cannot be deactivated", code="illegal_transition",
                       detail={"state": "active", "action": "deactivate"})
    active_children = repo.children(session, org.id)
    if active_children:
        raise Conflict(f"{org.code!r} has active organisations under it: move or deactivate them first",
                       code="organisation_has_children", detail={"children": [c.code for c in active_children]})
    org.active = False
    session.add(org)
    session.flush()


def activate_organisation(session: Session, org: Organisation) -> None:
    parent = session.get(Organisation, org.parent_id) if org.parent_id else None
    if parent is not None and not parent.active:
        raise Conflict(f"its parent {parent.code!r} is deactivated: activate that first", code="organisation_inactive")
    org.active = True
    session.add(org)
    session.flush()


# -- staff -------------------------------------------------------------------------------------------


def staff_by_username(session: Session, username: str) -> StaffAccount:
    staff = repo.staff_by_username(session, username)
    if staff is None:
        raise NotFound(f"no staff member {username!r}")
    return staff


def create_staff(
    session: Session, *, username: str, display_name: str, password: str, roles: list[str],
    organisation_code: str | None = None,
) -> StaffAccount:
    """The account itself (bootstrap, tests). Operators go through `add_staff`, which also checks the rules."""
    org_id = organisation_by_code(session, organisation_code).id if organisation_code else None
    staff = StaffAccount(username=username, display_name=display_name, password_hash=hash_password(password),
                         roles=sorted(set(roles)), organisation_id=org_id)
    try:
        with session.begin_nested():
            session.add(staff)
            session.flush()
    except IntegrityError:
        raise Conflict(f"user name {username!r} is taken", code="duplicate") from None
    return staff


def _check_roles_fit(roles: list[str], org: Organisation | None) -> None:
    unknown = sorted(set(roles) - ALL_STAFF_ROLES)
    if unknown:
        raise BadRequest(f"unknown roles: {', '.join(unknown)}", code="unknown_role", detail={"roles": unknown})
    kind = org.kind if org is not None else "centre"  # an account without organisation is the node's own
    misplaced = sorted(r for r in roles if kind not in ROLE_ORGANISATION_KINDS[r])
    if misplaced:
        raise BadRequest(
            f"a staff member of {_a(kind)} cannot hold {', '.join(misplaced)}", code="role_not_allowed",
            detail={"roles": misplaced, "organisation_kind": kind,
                    "allowed": {r: sorted(ROLE_ORGANISATION_KINDS[r]) for r in misplaced}},
        )


def _staff_organisation(session: Session, organisation_code: str | None) -> Organisation:
    org = organisation_by_code(session, organisation_code) if organisation_code else repo.centre(session)
    if org is None:
        raise BadRequest("name the staff member's organisation (the node has no centre)",
                         code="organisation_required")
    if not org.active:
        raise Conflict(f"organisation {org.code!r} is deactivated", code="organisation_inactive")
    return org


def add_staff(
    session: Session, *, username: str, display_name: str, roles: list[str], organisation_code: str | None = None,
    password: str | None = None,
) -> tuple[StaffAccount, str | None]:
    """An operator creates a staff account (in the centre unless an organisation is named).
    Returns (account, the generated initial password, or None when one was given)."""
    org = _staff_organisation(session, organisation_code)
    _check_roles_fit(roles, org)
    generated = None if password else new_password()
    staff = create_staff(session, username=username, display_name=display_name, password=password or generated,
                         roles=roles, organisation_code=org.code)
    return staff, generated


def update_staff(session: Session, staff: StaffAccount, *, changes: dict) -> dict:
    """Rename a staff member or move them to another organisation (their roles must fit there)."""
    changed = {}
    if "display_name" in changes and changes["display_name"] != staff.display_name:
        changed["display_name"] = [staff.display_name, changes["display_name"]]
        staff.display_name = changes["display_name"]
    if changes.get("organisation_code"):
        org = _staff_organisation(session, changes["organisation_code"])
        if org.id != staff.organisation_id:
            _check_roles_fit(staff.roles, org)
            old = repo.codes_by_id(session, {staff.organisation_id}).get(staff.organisation_id)
            changed["organisation"] = [old, org.code]
            staff.organisation_id = org.id  # read per request (node.deps): takes effect at the next one
    session.add(staff)
    session.flush()
    return changed


def _keep_an_admin(session: Session, staff: StaffAccount) -> None:
    if Role.NODE_ADMIN in staff.roles and repo.active_admins(session) == [staff.id]:
        raise Conflict("this is the last active node administrator", code="last_admin")


def change_roles(
    session: Session, staff: StaffAccount, *, set_to: list[str] | None = None, add: list[str] = (),
    remove: list[str] = (),
) -> tuple[list[str], list[str]]:
    """Set, or add to and remove from, a staff member's roles. Returns (old roles, new roles)."""
    old = sorted(staff.roles)
    new = set(set_to) if set_to is not None else (set(old) | set(add)) - set(remove)
    if not new:
        raise BadRequest("a staff member keeps at least one role (disable the account instead)",
                         code="roles_required")
    org = session.get(Organisation, staff.organisation_id) if staff.organisation_id else None
    _check_roles_fit(sorted(new), org)
    if Role.NODE_ADMIN not in new:
        _keep_an_admin(session, staff)
    staff.roles = sorted(new)
    session.add(staff)
    session.flush()  # roles are read per request (node.deps), not from the token: the next request has them
    return old, staff.roles


def set_staff_active(session: Session, staff: StaffAccount, *, active: bool) -> None:
    """Disable (every request of theirs is refused from now on) or re-enable a staff account."""
    if not active and staff.active:
        _keep_an_admin(session, staff)
        _revoke_sessions(session, staff)
    staff.active = active
    session.add(staff)
    session.flush()


def reset_password(session: Session, staff: StaffAccount, *, password: str | None = None) -> str | None:
    """Set a new password (generated unless given); returns the generated one, to be shown once."""
    generated = None if password else new_password()
    staff.password_hash = hash_password(password or generated)
    session.add(staff)
    session.flush()
    _revoke_sessions(session, staff)
    return generated


# -- API keys ------------------------------------------------------------------------------------------


def create_api_key(
    session: Session, *, organisation_code: str, label: str, created_by: int | None
) -> tuple[ApiKey, str]:
    """A key for an institution's system; returns (row, the key in clear, shown once)."""
    org = organisation_by_code(session, organisation_code)
    if org.kind != "institution":
        raise BadRequest(f"{org.code!r} is {_a(org.kind)}; API keys are for institutions",
                         code="unknown_institution")
    if not org.active:
        raise Conflict(f"organisation {org.code!r} is deactivated", code="organisation_inactive")
    prefix = secrets.token_hex(6)
    key = f"{prefix}.{secrets.token_urlsafe(32)}"
    row = ApiKey(prefix=prefix, key_hash=hashlib.sha256(key.encode()).hexdigest(), organisation_id=org.id,
                 label=label, roles=[Role.INSTITUTION_UPLOADER], created_by=created_by)
    session.add(row)
    session.flush()
    return row, key


def api_key_by_prefix(session: Session, prefix: str) -> ApiKey:
    row = repo.api_key_by_prefix(session, prefix)
    if row is None:
        raise NotFound(f"no API key with prefix {prefix!r}")
    return row


def revoke_api_key(session: Session, row: ApiKey) -> bool:
    """Revoke a key (it stops working at once). Returns False when it was revoked already."""
    if row.revoked_at is not None:
        return False
    row.revoked_at = utcnow()
    session.add(row)
    session.flush()
    return True
