"""A generated data set for the statistics, and its hand-computed expectation.

Part A goes through the node's own paths today: a bulk import (two institutions), an individual deposit through
both reviews, one rejected at the first review, one still waiting. Part B appends ledger events dated in
January–March 2025 (the ledger's `at`), so ranges and months can be checked; its expectation is tallied here from
the list that generates it, not by the code under test."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

import pytest
import sqlalchemy as sa

from tests.conftest import valid_id
from tests.deposits.helpers import decide, ok, register_learner, submitted
from tests.imports.conftest import INSTITUTION, OTHER_INSTITUTION, sh_csv, sh_row, upload  # noqa: F401 (a fixture)

UTC = dt.UTC


def refresh(app) -> dict:
    from node.stats.counting import refresh as run

    return run(app.state.ctx.engine, chunk=7)  # a small chunk: the high-water mark crosses many commits


@dataclass
class Generated:
    # (day (local), type, source, issuer, credits in thousandths)
    deposits: list[tuple[dt.date, str, str, str, int]] = field(default_factory=list)
    active: Counter = field(default_factory=Counter)  # month -> distinct learners


# Part B: (UTC time of the event, learner index, type, issuer, credits); 23:30 UTC is already the next local day
PART_B = (
    [(dt.datetime(2025, 1, 10, 2, 0, tzinfo=UTC), i % 4, "degree_course", "U10001", "2") for i in range(12)]
    + [(dt.datetime(2025, 1, 31, 23, 30, tzinfo=UTC), 1, "training", "T0001", "1")] * 3  # local 2025-02-01
    + [(dt.datetime(2025, 2, 14, 8, 0, tzinfo=UTC), i % 3, "degree_course", "U10001", "3") for i in range(11)]
    + [(dt.datetime(2025, 2, 20, 8, 0, tzinfo=UTC), 2, "vocational_qualification", "S0001", "0.5")] * 2
    + [(dt.datetime(2025, 3, 3, 8, 0, tzinfo=UTC), i % 2, "vocational_qualification", "S0001", "1.5")
       for i in range(10)]
    + [(dt.datetime(2025, 3, 9, 8, 0, tzinfo=UTC), 0, "degree_course", "U10001", "4")]
)


@pytest.fixture
def dataset(app, client, staff_headers, upload):
    from node.db import session_scope
    from node.ledger.service import EventSpec, append_events
    from node.models import Learner
    from node.org.service import create_organisation

    ctx = app.state.ctx
    with session_scope(ctx.engine) as s:
        create_organisation(s, code=INSTITUTION, name="上海示范大学", kind="institution", institution_type="university")
        create_organisation(s, code=OTHER_INSTITUTION, name="另一所大学", kind="institution",
                            institution_type="university")
    refresh(app)  # nothing to count yet: the mark stays at 0
    # -- part A: bulk import, 12 learners × 2 courses at U10001, 3 learners × 1 course at U20002
    rows = [sh_row(serial=f"{200 + i}", course=c, credits="4", student_no=f"S{i}")
            for i in range(12) for c in ("高等数学", "大学英语")]
    assert upload(staff_headers("institution_uploader", org=INSTITUTION), sh_csv(rows)).json()["status"] == "done"
    refresh(app)
    rows = [sh_row(serial=f"{300 + i}", course="线性代数", credits="3", student_no=f"T{i}") for i in range(3)]
    assert upload(staff_headers("institution_uploader", org=OTHER_INSTITUTION), sh_csv(rows)).json()["status"] == "done"
    # -- individual deposits: one deposited after both reviews, one rejected at the first, one waiting
    learner = register_learner(client, serial="901")
    branch = staff_headers("branch_reviewer", org="B01")
    centre = staff_headers("centre_reviewer", org="CENTRE")
    a1 = submitted(client, learner, branch="B01")
    a1 = ok(decide(client, branch, a1, "approve"))
    refresh(app)
    ok(decide(client, centre, a1, "approve"))
    a2 = submitted(client, learner, branch="B01", code="PHY101", title="大学物理")
    ok(decide(client, branch, a2, "reject", reason="证明不清晰"))
    submitted(client, learner, branch="B01", code="CHEM101", title="化学")
    refresh(app)
    # -- part B: dated events about the first four bulk learners
    gen = Generated()
    with session_scope(ctx.engine) as s:
        learners = s.execute(sa.select(Learner.id, Learner.pseudonym).order_by(Learner.id).limit(4)).all()
        specs = []
        seen: set[tuple[int, dt.date]] = set()
        for at, who, kind, issuer, credits in PART_B:
            lid, pseudonym = learners[who]
            specs.append(EventSpec(kind="achievement.deposited", learner_id=lid, pseudonym=pseudonym, at=at,
                                   data={"type": kind, "source": "bulk", "issuer": issuer, "credits": credits}))
            day = at.astimezone(dt.timezone(dt.timedelta(hours=8))).date()
            gen.deposits.append((day, kind, "bulk", issuer, int(float(credits) * 1000)))
            if (lid, day.replace(day=1)) not in seen:
                seen.add((lid, day.replace(day=1)))
                gen.active[day.replace(day=1)] += 1
        append_events(s, specs[:20])
        append_events(s, specs[20:])
    refresh(app)
    return gen
