"""Helpers shared by the rules tests: loading the seed bundles and making outcomes."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from functools import cache
from pathlib import Path

from node.rules import Outcome, StandardsBundle, parse_standards_bundle

STANDARDS_DIR = Path(__file__).resolve().parents[2] / "config" / "standards"


@cache
def load_bundle(name: str) -> StandardsBundle:
    return parse_standards_bundle(json.loads((STANDARDS_DIR / f"{name}.json").read_text(encoding="utf-8")))


def pilot() -> StandardsBundle:
    return load_bundle("shanghai-pilot-2016")


def certificate(oid: str, code: str, level: str, *, title: str | None = None, earned: dt.date = dt.date(2019, 6, 1),
                expires: dt.date | None = None, score: str = "合格") -> Outcome:
    return Outcome(id=oid, type="vocational_qualification", catalogue_code=code, title=title or f"{code}（{level}）",
                   level=level, earned_on=earned, expires_on=expires, score_text=score, issuer_code="SH-OSTA")


def course(oid: str, code: str, issuer: str, *, score: str = "75", title: str | None = None, credits: str = "4",
           earned: dt.date = dt.date(2019, 1, 15)) -> Outcome:
    return Outcome(id=oid, type="degree_course", catalogue_code=code, title=title or code, issuer_code=issuer,
                   level="专科", score_text=score, credits=Decimal(credits), earned_on=earned)
