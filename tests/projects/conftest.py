"""Fixtures for projects, catalogue and RPL tests: the conversion tests' seeds, learners and deposits, plus staff in
organisations of a given kind (an institution applies for a project; experts may sit anywhere)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import select

from node.db import session_scope
from node.ledger.service import event_data
from node.models import Organisation, StaffAccount
from node.security.tokens import issue_token
from tests.conversion.conftest import crew, deposit_via_api, learner, outcome, seeded, staff  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE_2020 = ROOT / "config/standards/shanghai-catalogue-2020.json"


def make_person(ctx, *roles: str, org: str, kind: str = "centre", name: str) -> tuple[int, dict[str, str]]:
    """A staff member holding `roles` in organisation `org` (created with `kind` if new): (id, auth headers)."""
    with session_scope(ctx.engine) as s:
        organisation = s.exec(select(Organisation).where(Organisation.code == org)).first()
        if organisation is None:
            organisation = Organisation(code=org, name=org, kind=kind,
                                        institution_type="university" if kind == "institution" else None)
            s.add(organisation)
            s.flush()
        account = StaffAccount(username=name, password_hash="!", display_name=name, roles=list(roles),
                               organisation_id=organisation.id)
        s.add(account)
        s.flush()
        staff_id = account.id
    token = issue_token(secret=ctx.token_secret, issuer=ctx.node_id, subject=f"staff:{staff_id}",
                        roles=list(roles), ttl=3600)
    return staff_id, {"Authorization": f"Bearer {token}"}


@pytest.fixture
def person(ctx):
    """person("expert", org="SH-OSTA", kind="institution") -> (staff id, auth headers)."""
    seq = iter(range(1, 1000))

    def make(*roles: str, org: str, kind: str = "centre") -> tuple[int, dict[str, str]]:
        return make_person(ctx, *roles, org=org, kind=kind, name=f"proj{next(seq)}{org}")

    return make


def events(engine, kind: str) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT seq, leaf, opening, achievement_id FROM ledger_event WHERE kind = :k "
                                    "ORDER BY seq"), {"k": kind}).all()
    return [dict(json.loads(r.leaf), seq=r.seq, data=event_data(r), achievement_id=r.achievement_id) for r in rows]


def audit_actions(engine, prefix: str) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT action, outcome FROM audit_log WHERE action LIKE :p ORDER BY id"),
                            {"p": prefix + "%"}).all()
    return [(r.action, r.outcome) for r in rows]
