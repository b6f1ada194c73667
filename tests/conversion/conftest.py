"""Fixtures for the conversion tests: seeds loaded through the CLI loader, learners, deposited outcomes."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from node.db import session_scope
from node.learners.service import open_account
from node.ledger.service import EventSpec, append_events
from node.models import Achievement, Learner, Organisation, StaffAccount
from node.security.tokens import issue_token
from tests.conftest import valid_id
from tests.deposits.helpers import LearnerUser, decide, ok, submitted

ROOT = Path(__file__).resolve().parents[2]
SEEDS = [ROOT / "config/standards/framework.json", ROOT / "config/standards/shanghai-pilot-2016.json"]


@pytest.fixture
def seeded(ctx) -> None:
    from node.standards.cli import load_files

    load_files(ctx.engine, SEEDS)


def _token(ctx, subject: str, roles: list[str]) -> dict[str, str]:
    token = issue_token(secret=ctx.token_secret, issuer=ctx.node_id, subject=subject, roles=roles, ttl=3600)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def learner(ctx):
    """learner() -> LearnerUser: an account opened directly, with a token (no password hashing: fast)."""
    serials = iter(range(301, 399))

    def make() -> LearnerUser:
        number = valid_id(serial=str(next(serials)))
        with session_scope(ctx.engine) as s:
            account, _ = open_account(s, ctx, id_type="resident_id", id_number=number, name="测试学员")
            learner_id, account_no = account.id, account.account_no
        return LearnerUser(learner_id, account_no, number, _token(ctx, f"learner:{learner_id}", ["learner"]))

    return make


@pytest.fixture
def staff(ctx):
    """staff("outlet_staff", org="O01") -> auth headers of a new staff member (created directly: fast)."""
    seq = iter(range(1, 1000))

    def make(*roles: str, org: str = "O01") -> dict[str, str]:
        with session_scope(ctx.engine) as s:
            organisation = s.exec(select(Organisation).where(Organisation.code == org)).first()
            if organisation is None:
                organisation = Organisation(code=org, name=org, kind="branch")
                s.add(organisation)
                s.flush()
            name = f"conv{next(seq)}"
            account = StaffAccount(username=name, password_hash="!", display_name=name, roles=list(roles),
                                   organisation_id=organisation.id)
            s.add(account)
            s.flush()
            staff_id = account.id
        return _token(ctx, f"staff:{staff_id}", list(roles))

    return make


@pytest.fixture
def outcome(ctx):
    """outcome(learner_id, type=..., code=..., ...) -> achievement id: a deposited outcome with its ledger event
    (the shortcut of tests/credentials/conftest.py; the worked examples use the full deposit workflow)."""

    def make(learner_id: int, *, type: str, code: str, title: str, issuer_code: str, level: str | None = None,
             score: str = "85", earned_on: dt.date = dt.date(2024, 6, 30), expires_on: dt.date | None = None,
             credits: str | None = None) -> int:
        with session_scope(ctx.engine) as s:
            learner = s.get(Learner, learner_id)
            a = Achievement(learner_id=learner_id, type=type, issuer_code=issuer_code, code=code, title=title,
                            level=level, score_text=score,
                            score_value=Decimal(score) if score.isdigit() else None,
                            credits=Decimal(credits) if credits else None, earned_on=earned_on,
                            expires_on=expires_on, source="individual")
            s.add(a)
            s.flush()
            append_events(s, [EventSpec(kind="achievement.deposited", learner_id=learner_id, achievement_id=a.id,
                                        pseudonym=learner.pseudonym,
                                        data={"achievement": a.id, "title": title})])
            return a.id

    return make


@pytest.fixture
def deposit_via_api(client, staff):
    """Deposit a claim through the real two-stage workflow (learner applies, branch and centre approve)."""
    branch = staff("branch_reviewer", org="B01")
    centre = staff("centre_reviewer", org="C01")

    def make(learner: LearnerUser, **claim: Any) -> int:
        app = submitted(client, learner, branch="B01", **claim)  # the branch reviewer's queue
        first = ok(decide(client, branch, app, "approve"))
        done = ok(decide(client, centre, first, "approve"))
        assert done["state"] == "deposited"
        return done["achievement_id"]

    return make


@pytest.fixture
def crew(staff):
    """The people of a conversion: outlet staff and two reviewers."""
    return {
        "outlet": staff("outlet_staff", org="O01"),
        "outlet2": staff("outlet_staff", org="O01"),
        "branch": staff("branch_reviewer", org="B01"),
        "centre": staff("centre_reviewer", org="C01"),
    }
