"""The conversion golden vectors (conformance-tests/vectors/conversion) are self-consistent: an independent
reading of their documented semantics (vectors/README.md) re-derives every expected outcome exactly."""

from __future__ import annotations

import datetime as dt
import json
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

import pytest

VECTORS = Path(__file__).resolve().parents[2] / "conformance-tests" / "vectors" / "conversion"


def _decimal(text: object) -> Decimal:
    assert isinstance(text, str), f"credits and hours are decimal strings, got {text!r}"
    return Decimal(text)


def evaluate(vector: dict, case: dict) -> dict:
    agreement = vector["agreement"]
    origin_h = _decimal(vector["standards"]["origin"]["hours_per_credit"])
    dest_h = _decimal(vector["standards"]["destination"]["hours_per_credit"])
    quantum = _decimal(agreement["equivalence"]["quantum"])
    mappings = {m["origin_course"]: m for m in agreement["mappings"]}
    date = dt.date.fromisoformat(case["date"])
    valid = dt.date.fromisoformat(agreement["valid_from"]) <= date <= dt.date.fromisoformat(agreement["valid_to"])
    recognised, refused = [], []
    for index, rec in enumerate(case["records"]):
        if not valid:
            refused.append({"record": index, "reason": "outside_validity"})
        elif rec["type"] not in agreement["scope"]["achievement_types"]:
            refused.append({"record": index, "reason": "out_of_scope"})
        elif rec["course_code"] in mappings:
            m = mappings[rec["course_code"]]
            recognised.append({"record": index, "destination_course": m["destination_course"],
                               "credits": m["destination_credits"], "basis": "mapping"})
        elif rec.get("reference_level") in agreement["reference_levels"]:
            exact = _decimal(rec["credits"]) * origin_h / dest_h
            credits = (exact / quantum).to_integral_value(rounding=ROUND_DOWN) * quantum
            recognised.append({"record": index, "reference_level": rec["reference_level"],
                               "credits": credits, "basis": "hours"})
        else:
            refused.append({"record": index, "reason": "no_mapping"})
    return {"recognised": recognised, "not_recognised": refused}


def _cases() -> list:
    out = []
    for path in sorted(VECTORS.glob("*.json")):
        vector = json.loads(path.read_text(encoding="utf-8"))
        out += [pytest.param(vector, case, id=f"{path.stem}:{case['id']}") for case in vector["cases"]]
    return out


def test_there_are_vectors() -> None:
    assert len(_cases()) >= 5


@pytest.mark.parametrize(("vector", "case"), _cases())
def test_vector_is_self_consistent(vector: dict, case: dict) -> None:
    got = evaluate(vector, case)
    expected = case["expected"]
    assert got["not_recognised"] == expected["not_recognised"]
    assert len(got["recognised"]) == len(expected["recognised"])
    for mine, theirs in zip(got["recognised"], expected["recognised"], strict=True):
        assert {k: v for k, v in mine.items() if k != "credits"} == {k: v for k, v in theirs.items()
                                                                     if k != "credits"}
        assert _decimal(theirs["credits"]) == Decimal(mine["credits"]), case["id"]
