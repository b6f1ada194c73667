"""Conversion-window warnings: a record that satisfies a rule in force is warned about before its "within N
years" runs out (or the rule ends), once per (record, rule, closing day); not when it no longer or does not yet
qualify, is beyond the horizon, or was converted under that rule already. Hand-computed dates."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest

from node.engage import windows
from tests.conversion.conftest import learner  # noqa: F401 (a fixture)

ROOT = Path(__file__).resolve().parents[2]
RULE = "SH-GS-CT-2020-MODERN-CHINESE"  # degree_course UNIVB-MODERN-CHINESE from SH-UNIV-B, ≥ 60, within 8 years
TODAY = dt.date(2026, 12, 3)  # horizon: engage.window_notice_days = 60 → 2027-02-01


@pytest.fixture
def catalogue_2020(ctx) -> None:
    from node.standards.cli import load_files

    load_files(ctx.engine, [ROOT / "config/standards/framework.json",
                            ROOT / "config/standards/shanghai-catalogue-2020.json"])


def _course(outcome, learner_id: int, earned: dt.date, score: str = "85") -> int:
    return outcome(learner_id, type="degree_course", code="UNIVB-MODERN-CHINESE", title="现代汉语",
                   issuer_code="SH-UNIV-B", score=score, earned_on=earned, credits="3")


def _converted(ctx, learner_id: int, achievement_id: int) -> None:
    from node.db import session_scope
    from node.models.standards import ConversionItem, ConversionRequest, ConversionUsage

    with session_scope(ctx.engine) as s:
        req = ConversionRequest(learner_id=learner_id, programme_code="UNIVA-CE-CHINESE", on_date=TODAY,
                                state="decided", requested_by="learner:1")
        s.add(req)
        s.flush()
        item = ConversionItem(request_id=req.id, target_key="course:UNIVA-CHN-MODERN", rule_id=RULE, rule_version=1,
                              sources=[achievement_id], proposed_credits=Decimal(3), credits=Decimal(3),
                              recorded_grade="85", status="approved")
        s.add(item)
        s.flush()
        s.add(ConversionUsage(learner_id=learner_id, programme_code="UNIVA-CE-CHINESE",
                              target_key="course:UNIVA-CHN-MODERN", achievement_id=achievement_id, item_id=item.id,
                              credits=Decimal(3), year=2026))


def _window_notices(engine) -> list[tuple]:
    import sqlalchemy as sa

    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT learner_id, params, link, dedupe_key FROM notice "
                                    "WHERE kind = 'conversion_window_closing' ORDER BY id")).all()
    return [(r.learner_id, r.params if isinstance(r.params, dict) else json.loads(r.params), r.link, r.dedupe_key)
            for r in rows]


def test_records_about_to_leave_a_window_are_warned_once(ctx, engine, catalogue_2020, learner, outcome) -> None:
    me, other = learner(), learner()
    closing = _course(outcome, me.id, dt.date(2018, 12, 20))  # usable until 2026-12-20: 17 days
    _course(outcome, me.id, dt.date(2019, 3, 1))  # until 2027-03-01: beyond the horizon
    _course(outcome, me.id, dt.date(2018, 12, 20), score="50")  # below the rule's 60: never usable
    _course(outcome, me.id, dt.date(2018, 11, 1))  # its window closed on 2026-11-01
    used = _course(outcome, other.id, dt.date(2018, 12, 25))
    _converted(ctx, other.id, used)  # converted under the rule already
    first = windows.window_notices(ctx, today=TODAY)
    assert first["notices"] == 1 and first["until"] == "2027-02-01"
    assert _window_notices(engine) == [(me.id, {"id": closing, "title": "现代汉语", "rule": RULE,
                                                "rule_title": _window_notices_title(ctx),
                                                "closes_on": "2026-12-20", "cause": "within_years"},
                                        f"/me/records/{closing}", f"window:{closing}:{RULE}:2026-12-20")]
    assert windows.window_notices(ctx, today=TODAY)["notices"] == 0  # once
    assert windows.window_notices(ctx, today=dt.date(2026, 12, 19))["notices"] == 0  # same window, same day
    # a month later the second record's window (2027-03-01) is within 60 days: warned then
    later = windows.window_notices(ctx, today=dt.date(2027, 1, 5))
    assert later["notices"] == 1


def _window_notices_title(ctx) -> str:
    body = json.loads((ROOT / "config/standards/shanghai-catalogue-2020.json").read_text(encoding="utf-8"))
    return next(r["title"] for r in body["rules"] if r["id"] == RULE)


def test_a_rules_end_closes_the_window_too() -> None:
    from node.rules.matching import leaves_of
    from node.rules.model import Outcome
    from node.rules.parse import parse_rule

    body = json.loads((ROOT / "config/standards/shanghai-catalogue-2020.json").read_text(encoding="utf-8"))
    doc = next(r for r in body["rules"] if r["id"] == RULE) | {"effective_to": "2027-01-10"}
    rule = parse_rule(doc)
    [leaf] = leaves_of(rule.condition)
    earned = Outcome(id="1", type="degree_course", catalogue_code="UNIVB-MODERN-CHINESE", title="现代汉语",
                     earned_on=dt.date(2024, 6, 1))
    assert windows._closes(rule, leaf, earned) == (dt.date(2027, 1, 10), "rule_ends")  # before 2032-06-01
    old = Outcome(id="2", type="degree_course", catalogue_code="UNIVB-MODERN-CHINESE", title="现代汉语",
                  earned_on=dt.date(2018, 12, 20))
    assert windows._closes(rule, leaf, old) == (dt.date(2026, 12, 20), "within_years")
    assert [r.id for r in windows.rules_in_force((rule,), dt.date(2027, 1, 11))] == []
    assert [r.id for r in windows.rules_in_force((rule,), dt.date(2027, 1, 10))] == [RULE]
