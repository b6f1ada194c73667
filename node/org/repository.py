"""SQL of organisations, staff accounts and API keys (built from the caller's session)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Session, select

from node.models import ApiKey, Organisation, StaffAccount
from node.roles import Role

__all__ = [
    "active_admins",
    "api_key_by_prefix",
    "api_keys",
    "centre",
    "children",
    "codes_by_id",
    "organisation_by_code",
    "organisations",
    "staff_by_username",
    "staff_members",
]


def organisation_by_code(session: Session, code: str) -> Organisation | None:
    return session.exec(select(Organisation).where(Organisation.code == code)).first()


def centre(session: Session) -> Organisation | None:
    """The node's centre (one per node; the oldest if a database holds several)."""
    stmt = select(Organisation).where(Organisation.kind == "centre").order_by(Organisation.id)
    return session.exec(stmt).first()


def organisations(
    session: Session, *, kind: str | None = None, parent_id: int | None = None, active: bool | None = None,
    after: str | None = None, limit: int = 100,
) -> list[Organisation]:
    """By code; `after` is the keyset cursor (the last code of the previous page)."""
    stmt = select(Organisation)
    if kind is not None:
        stmt = stmt.where(Organisation.kind == kind)
    if parent_id is not None:
        stmt = stmt.where(Organisation.parent_id == parent_id)
    if active is not None:
        stmt = stmt.where(Organisation.active == active)
    if after is not None:
        stmt = stmt.where(Organisation.code > after)
    return list(session.exec(stmt.order_by(Organisation.code).limit(limit)))


def children(session: Session, org_id: int, *, active: bool | None = True) -> list[Organisation]:
    stmt = select(Organisation).where(Organisation.parent_id == org_id)
    if active is not None:
        stmt = stmt.where(Organisation.active == active)
    return list(session.exec(stmt.order_by(Organisation.code)))


def codes_by_id(session: Session, ids: set[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = session.execute(sa.select(Organisation.id, Organisation.code).where(Organisation.id.in_(wanted)))
    return {org_id: code for org_id, code in rows}


def _has_role(role: str) -> sa.ColumnElement[bool]:
    # `roles` is a JSON list of known role names; its text holds each one in double quotes on both databases
    escaped = role.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return sa.cast(StaffAccount.roles, sa.Text).like(f'%"{escaped}"%', escape="\\")


def staff_by_username(session: Session, username: str) -> StaffAccount | None:
    return session.exec(select(StaffAccount).where(StaffAccount.username == username)).first()


def staff_members(
    session: Session, *, organisation_id: int | None = None, role: str | None = None, active: bool | None = None,
    after: str | None = None, limit: int = 100,
) -> list[StaffAccount]:
    """By user name; `after` is the keyset cursor (the last user name of the previous page)."""
    stmt = select(StaffAccount)
    if organisation_id is not None:
        stmt = stmt.where(StaffAccount.organisation_id == organisation_id)
    if role is not None:
        stmt = stmt.where(_has_role(role))
    if active is not None:
        stmt = stmt.where(StaffAccount.active == active)
    if after is not None:
        stmt = stmt.where(StaffAccount.username > after)
    return list(session.exec(stmt.order_by(StaffAccount.username).limit(limit)))


def active_admins(session: Session) -> list[int]:
    """Ids of the node administrators who can act: account active, organisation (if any) active."""
    stmt = (
        sa.select(StaffAccount.id)
        .outerjoin(Organisation, Organisation.id == StaffAccount.organisation_id)
        .where(StaffAccount.active.is_(True), _has_role(Role.NODE_ADMIN),
               sa.or_(StaffAccount.organisation_id.is_(None), Organisation.active.is_(True)))
    )
    return list(session.execute(stmt).scalars())


def api_key_by_prefix(session: Session, prefix: str) -> ApiKey | None:
    return session.exec(select(ApiKey).where(ApiKey.prefix == prefix)).first()


def api_keys(session: Session, *, organisation_id: int | None = None, active: bool | None = None,
             limit: int = 500) -> list[ApiKey]:
    stmt = select(ApiKey)
    if organisation_id is not None:
        stmt = stmt.where(ApiKey.organisation_id == organisation_id)
    if active is True:
        stmt = stmt.where(ApiKey.revoked_at.is_(None))
    elif active is False:
        stmt = stmt.where(ApiKey.revoked_at.is_not(None))
    return list(session.exec(stmt.order_by(ApiKey.id).limit(limit)))
