"""RFC 8785: cyberphone vectors, ES6 number edge cases, fast-path equivalence with the rfc8785 package."""

from __future__ import annotations

import json
import struct

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.errors import CanonicalizationError
from crypto.jcs import _fast, canonicalize, loads_strict
from tests.crypto.conftest import vector_path

CYBER = "rfc8785-cyberphone"


def _cyber_names() -> list[str]:
    try:
        return sorted(p.name for p in vector_path(CYBER, "testdata", "input").iterdir())
    except BaseException:  # skip inside collection is not allowed; report no params instead
        return []


@pytest.mark.parametrize("name", _cyber_names())
def test_cyberphone_vectors(name: str) -> None:
    data = json.loads(vector_path(CYBER, "testdata", "input", name).read_bytes())
    expected = vector_path(CYBER, "testdata", "output", name).read_bytes()
    assert canonicalize(data) == expected


def test_cyberphone_vector_count() -> None:
    assert len(_cyber_names()) == 6


def test_es6_number_edge_cases() -> None:
    cases = json.loads(vector_path(CYBER, "es6-number-edge-cases.json").read_text())["cases"]
    assert len(cases) == 26
    for case in cases:
        value = struct.unpack(">d", bytes.fromhex(case["hex_ieee_be"]))[0]
        if case["expected"] is None:
            with pytest.raises(CanonicalizationError):
                canonicalize(value)
        else:
            assert canonicalize(value) == case["expected"].encode()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), 2**53, -(2**53), {1: "x"},
                                 {"a": [float("nan")]}, "\ud800", {"k": object()}])
def test_rejects(bad: object) -> None:
    with pytest.raises(CanonicalizationError):
        canonicalize(bad)


def test_safe_integer_bounds_accepted() -> None:
    assert canonicalize([2**53 - 1, -(2**53 - 1)]) == b"[9007199254740991,-9007199254740991]"


def test_control_chars_and_specials_identical() -> None:
    s = "".join(chr(i) for i in range(0x80)) + "\u2028\u2029\ufeff\u00e9中\U0001f600"
    assert canonicalize({s: s}) == rfc8785.dumps({s: s})


def test_utf16_key_order_astral_vs_private_use() -> None:
    doc = {"\ue000": 1, "\U0001f600": 2, "a": 3}
    assert canonicalize(doc) == rfc8785.dumps(doc)
    assert _fast(doc) is None  # orjson's code point order differs: must fall back


def test_fast_path_used_for_typical_records() -> None:
    doc = {"title": "大学物理", "credits": "3.5", "n": 12, "ok": True, "none": None, "list": [1, {"b": "c"}]}
    assert _fast(doc) is not None
    assert canonicalize(doc) == rfc8785.dumps(doc)


def test_floats_go_to_slow_path() -> None:
    doc = {"x": 1.0, "y": [1e21, 0.1]}
    assert _fast(doc) is None
    assert canonicalize(doc) == b'{"x":1,"y":[1e+21,0.1]}'


def test_loads_strict() -> None:
    assert loads_strict(b'{"a": [1, 2.5, "x"]}') == {"a": [1, 2.5, "x"]}
    for bad in ['{"a": 1, "a": 2}', '{"a": NaN}', "[Infinity]", "[-Infinity]", "{", '{"a":1} x', b"\xff"]:
        with pytest.raises(CanonicalizationError):
            loads_strict(bad)
    with pytest.raises(ValueError, match="duplicate"):
        loads_strict('{"x": {"a": 1, "a": 1}}')


_keys = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=6) | st.sampled_from(
    ["\ue000", "\U0001f600", "\uffff", "\U00010000", "a\x00", "\x7f", "é"])
_scalars = (
    st.none() | st.booleans() | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
)
_json = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(_keys, children, max_size=5),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None)
@given(_json)
def test_fast_path_equals_rfc8785(value: object) -> None:
    assert canonicalize(value) == rfc8785.dumps(value)
    fast = _fast(value)
    if fast is not None:
        assert fast == rfc8785.dumps(value)


@settings(max_examples=200, deadline=None)
@given(st.recursive(_scalars | st.floats(allow_nan=True, allow_infinity=True),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(_keys, c, max_size=4), max_leaves=15))
def test_with_floats_matches_or_both_raise(value: object) -> None:
    try:
        expected = rfc8785.dumps(value)
    except rfc8785.CanonicalizationError:
        with pytest.raises(CanonicalizationError):
            canonicalize(value)
    else:
        assert canonicalize(value) == expected


def test_fast_path_on_open_badges_shape() -> None:
    """URLs like context-3.0.3.json and decimal strings must not push a typical credential off the fast path."""
    doc = {
        "@context": ["https://www.w3.org/ns/credentials/v2",
                     "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"],
        "credentialSubject": {"achievement": {"name": "大学物理（一）", "creditsAvailable": "4.0"},
                              "creditsEarned": "-1.5", "list": ["2.5", "a,1.5"]},
        "validFrom": "2025-03-01T00:00:00Z",
    }
    assert _fast(doc) is not None
    assert canonicalize(doc) == rfc8785.dumps(doc)


@pytest.mark.parametrize("value", [[1.5], {"a": -1e100}, {"a": [0.0]}, [float("nan")], {"x": {"y": 5e-324}}])
def test_floats_always_leave_fast_path(value: object) -> None:
    assert _fast(value) is None


_floaty = st.recursive(
    _scalars | st.floats(allow_nan=False, allow_infinity=False),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(_keys, c, max_size=4), max_leaves=20)


@settings(max_examples=400, deadline=None)
@given(_floaty)
def test_float_path_equals_rfc8785(value: object) -> None:
    from crypto.jcs import _with_floats

    out = _with_floats(value)
    if out is not None:
        assert out == rfc8785.dumps(value)


def test_float_path_takes_open_badges_credit_numbers() -> None:
    from crypto.jcs import _with_floats

    doc = {"credentialSubject": {"creditsEarned": 2.5, "achievement": {"creditsAvailable": 0.5, "name": "大学物理"}},
           "edges": [1e21, 1e-7, -0.0, 5e-324, 123456789012345680000.0, 0.000001, 1.7976931348623157e308]}
    assert _fast(doc) is None
    assert _with_floats(doc) is not None
    assert canonicalize(doc) == rfc8785.dumps(doc)


def test_float_path_refuses_a_string_that_looks_like_its_marker(monkeypatch) -> None:
    """A string holding the (normally unguessable) marker must not be turned into a number: the count of
    markers differs from the count of floats, so the value goes to the reference serialiser."""
    import crypto.jcs as jcs

    monkeypatch.setattr(jcs.secrets, "token_hex", lambda n: "ab" * n)
    marker = "\x00" + "ab" * 12
    for doc in ({"x": 1.5, "s": marker + "0"}, {"x": 1.5, "s": '"' + marker + "0"}, [0.5, [marker + "1"]]):
        assert jcs._with_floats(doc) is None
        assert canonicalize(doc) == rfc8785.dumps(doc)


@pytest.mark.parametrize("value", [[float("nan")], {"a": float("inf")}, {"\U0001f600": 1.5}, [1.5, {1: 2}]])
def test_float_path_leaves_the_rest_to_the_reference(value: object) -> None:
    from crypto.jcs import _with_floats

    assert _with_floats(value) is None
