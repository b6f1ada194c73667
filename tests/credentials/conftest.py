from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from node.db import session_scope
from node.learners.service import open_account
from node.ledger.service import EventSpec, append_events
from node.models import Achievement
from tests.conftest import valid_id


@pytest.fixture
def deposit(ctx):
    """deposit(title=..., credits=...) -> (learner_id, achievement_id): a deposited outcome with its event."""
    serials = iter(range(100, 999))

    def make(title: str = "高等数学", credits: str = "4", learner_id: int | None = None, **fields) -> tuple[int, int]:
        with session_scope(ctx.engine) as s:
            if learner_id is None:
                learner, _ = open_account(s, ctx, id_type="resident_id", id_number=valid_id(serial=str(next(serials))),
                                          name="测试学员", password="learner-pass-1")
            else:
                from node.models import Learner

                learner = s.get(Learner, learner_id)
            a = Achievement(learner_id=learner.id, type=fields.pop("type", "degree_course"), issuer_code="U001",
                            issuer_name="上海开放大学", code=fields.pop("code", "MATH101"), title=title,
                            credits=Decimal(credits), hours=Decimal(64), score_text="85", score_value=Decimal(85),
                            earned_on=dt.date(2024, 6, 30), term="202406", source="individual", **fields)
            s.add(a)
            s.flush()
            append_events(s, [EventSpec(kind="achievement.deposited", learner_id=learner.id, achievement_id=a.id,
                                        pseudonym=learner.pseudonym,
                                        data={"achievement": a.id, "title": title, "credits": credits})])
            return learner.id, a.id

    return make
