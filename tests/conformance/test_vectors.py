"""The conversion golden vectors (conformance-tests/conformance/vectors/conversion) and the reference implementation cannot
drift: every case is evaluated offline with `federation.agreements.recognise` on exactly what the destination
feeds it (the record `_record_of` reads from the credential the mock origin issues for the vector record), and
must give the vector's expected outcome — the same figures test_10_conversion then demands of a node over HTTP."""

from __future__ import annotations

import copy
import sys

import pytest

from crypto.keys import Ed25519Key
from federation.agreements import recognise
from federation.agreements.document import check_shape
from federation.transfers.transfer import _record_of
from tests.conformance.nodes import CONFORMANCE_PATH

if str(CONFORMANCE_PATH) not in sys.path:  # the suite's package, installed or not
    sys.path.insert(0, str(CONFORMANCE_PATH))

from conformance.origin import MockOrigin
from conformance.vectors import cases, credential_fields, normalise, substitute

# as in the suite: the origin is a member without a region profile (the harness), the destination a region
ORIGIN, DESTINATION = "conformance-harness-vectors", "shanghai"
CASES = [pytest.param(vector, case, id=name) for name, vector, case in cases()]


def _origin() -> MockOrigin:
    base = "http://127.0.0.1:9"
    did = "did:web:127.0.0.1%3A9"
    return MockOrigin(ORIGIN, base, did, f"{did}#key-1", Ed25519Key.generate())


def evaluate(vector: dict, case: dict) -> dict:
    roles = vector["placeholders"]
    agreement = substitute(copy.deepcopy(vector["agreement"]), {roles["origin"]: ORIGIN,
                                                               roles["destination"]: DESTINATION})
    check_shape(agreement)
    origin = _origin()
    recognised, not_recognised = [], []
    for index, record in enumerate(case["records"]):
        credential = origin.issue("urn:uuid:learner", **credential_fields(record))
        got = recognise(agreement, origin=ORIGIN, destination=DESTINATION, record=_record_of(credential))
        if got is None:
            not_recognised.append(index)
        else:
            recognised.append({"record": index, "mapping": got.mapping_index, "code": got.code,
                               "credits": normalise(got.credits)})
    return {"recognised": recognised, "not_recognised": not_recognised}


def test_there_are_vectors() -> None:
    assert len(CASES) >= 8
    for _name, vector, _case in cases():
        assert set(vector["placeholders"]) == {"origin", "destination"}
        assert vector["agreement"]["parties"] == [vector["placeholders"]["origin"],
                                                  vector["placeholders"]["destination"]]


@pytest.mark.parametrize(("vector", "case"), CASES)
def test_vector_matches_recognise(vector: dict, case: dict) -> None:
    got = evaluate(vector, case)
    expected = case["expected"]
    assert got["recognised"] == [{**r, "credits": normalise(r["credits"])} for r in expected["recognised"]]
    assert got["not_recognised"] == [r["record"] for r in expected["not_recognised"]]
    # every expected figure is written exactly as the node states it (thousandths at most, no float forms)
    for r in expected["recognised"]:
        assert isinstance(r["credits"], str) and r["credits"] == normalise(r["credits"]), r


def test_reasons_are_documented() -> None:
    for _name, _vector, case in cases():
        for r in case["expected"]["not_recognised"]:
            assert r["reason"] in ("out_of_scope", "no_mapping"), r
