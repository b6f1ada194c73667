"""Fixtures for sign-in tests: an activated learner (opened at an outlet with a password)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests.conftest import valid_id

PASSWORD = "learner-pass-1"


@dataclass
class Person:
    id: int
    account_no: str
    id_number: str


@pytest.fixture
def learner(ctx) -> Callable[..., Person]:
    """learner(password=...) opens an account as an outlet would, with the password the person chose."""
    from node.db import session_scope
    from node.learners.service import open_account

    serials = itertools.count(200)

    def make(password: str | None = PASSWORD) -> Person:
        number = valid_id(serial=str(next(serials)))
        with session_scope(ctx.engine) as s:
            row, _ = open_account(s, ctx, id_type="resident_id", id_number=number, name="测试学员", password=password)
            return Person(row.id, row.account_no, number)

    return make


def token(client, username: str, password: str = PASSWORD, **form: str):
    return client.post("/api/v1/auth/token", data={"username": username, "password": password, **form})


def bearer(response) -> dict[str, str]:
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def audit_rows(engine, action: str) -> list[tuple]:
    with engine.connect() as conn:
        return list(conn.exec_driver_sql(
            "SELECT actor_kind, target_type, target_id, outcome, detail FROM audit_log WHERE action = ? ORDER BY id"
            if engine.dialect.name == "sqlite" else
            "SELECT actor_kind, target_type, target_id, outcome, detail FROM audit_log WHERE action = %s ORDER BY id",
            (action,)))
