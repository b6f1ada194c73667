"""Creating a node's first state: schema, the centre organisation, the first administrator."""

from __future__ import annotations

from sqlmodel import select

from config.settings import Settings
from node.db import make_engine, session_scope, upgrade_database
from node.models import Organisation, StaffAccount
from node.org.service import create_organisation, create_staff
from node.roles import Role

__all__ = ["bootstrap_node"]


def bootstrap_node(settings: Settings, *, admin_password: str, admin_username: str = "admin") -> None:
    upgrade_database(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        with session_scope(engine) as session:
            centre_code = f"{settings.node_id.upper()}-CENTRE"
            if not session.exec(select(Organisation).where(Organisation.code == centre_code)).first():
                create_organisation(session, code=centre_code, name=settings.region.name_zh, kind="centre")
            if not session.exec(select(StaffAccount).where(StaffAccount.username == admin_username)).first():
                create_staff(session, username=admin_username, display_name="Node administrator",
                             password=admin_password, roles=[Role.NODE_ADMIN], organisation_code=centre_code)
    finally:
        engine.dispose()
