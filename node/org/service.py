"""Organisations, staff accounts and API keys."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from node.errors import Conflict, NotFound
from node.models import ApiKey, Organisation, StaffAccount
from node.roles import Role
from node.security.passwords import hash_password

__all__ = ["create_api_key", "create_organisation", "create_staff", "organisation_by_code"]


def organisation_by_code(session: Session, code: str) -> Organisation:
    org = session.exec(select(Organisation).where(Organisation.code == code)).first()
    if org is None:
        raise NotFound(f"no organisation with code {code!r}")
    return org


def create_organisation(
    session: Session, *, code: str, name: str, kind: str, institution_type: str | None = None,
    parent_code: str | None = None,
) -> Organisation:
    if session.exec(select(Organisation).where(Organisation.code == code)).first():
        raise Conflict(f"organisation code {code!r} is taken", code="duplicate")
    parent_id = organisation_by_code(session, parent_code).id if parent_code else None
    org = Organisation(code=code, name=name, kind=kind, institution_type=institution_type, parent_id=parent_id)
    session.add(org)
    session.flush()
    return org


def create_staff(
    session: Session, *, username: str, display_name: str, password: str, roles: list[str],
    organisation_code: str | None = None,
) -> StaffAccount:
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


def create_api_key(session: Session, *, organisation_code: str, label: str, created_by: int | None) -> tuple[ApiKey, str]:
    """A key for an institution's system; returns (row, the key in clear, shown once)."""
    org = organisation_by_code(session, organisation_code)
    prefix = secrets.token_hex(6)
    key = f"{prefix}.{secrets.token_urlsafe(32)}"
    row = ApiKey(prefix=prefix, key_hash=hashlib.sha256(key.encode()).hexdigest(), organisation_id=org.id,
                 label=label, roles=[Role.INSTITUTION_UPLOADER], created_by=created_by)
    session.add(row)
    session.flush()
    return row, key
