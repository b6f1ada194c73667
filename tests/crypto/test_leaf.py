"""The ledger's leaf format (crypto.leaf): v2 commitments open only with their salt and say exactly what was
committed; v1 leaves stay readable and their per-learner subject checkable."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from crypto.errors import LeafError
from crypto.jcs import canonicalize
from crypto.leaf import (
    COMMITMENT_TAG,
    commitment,
    committed_leaf,
    open_leaf,
    opening_body,
    public_leaf,
    v1_subject,
)

PSEUDONYM = "urn:uuid:6f1c0e9a-0000-4000-8000-000000000001"
DATA = {"achievement": 7, "title": "高等数学（一）", "credits": "4.5", "score": "优"}


def _committed(salt: bytes, subject: str | None = PSEUDONYM, data: dict = DATA) -> bytes:
    return committed_leaf(seq=3, prev="ab" * 32, at="2026-12-02T00:00:00Z", kind="achievement.deposited",
                          commitment=commitment(salt, opening_body(subject, data)))


def test_a_commitment_is_the_tagged_hash_of_salt_and_canonical_body() -> None:
    salt = bytes(range(16))
    body = opening_body(PSEUDONYM, DATA)
    assert body == canonicalize({"data": DATA, "subject": PSEUDONYM})
    assert commitment(salt, body) == hashlib.sha256(COMMITMENT_TAG + salt + body).hexdigest()
    leaf = json.loads(_committed(salt))
    assert set(leaf) == {"v", "seq", "prev", "at", "kind", "commitment"} and leaf["v"] == 2
    assert PSEUDONYM not in json.dumps(leaf) and "高等数学" not in json.dumps(leaf, ensure_ascii=False)


def test_the_right_opening_proves_subject_and_data() -> None:
    salt = os.urandom(16)
    event = open_leaf(_committed(salt), {"salt": salt.hex(), "subject": PSEUDONYM, "data": DATA})
    assert (event.version, event.seq, event.kind, event.subject, event.data, event.public) == (
        2, 3, "achievement.deposited", PSEUDONYM, DATA, False)


@pytest.mark.parametrize("change", [
    {"salt": "00" * 16},
    {"subject": "urn:uuid:someone-else"},
    {"data": {**DATA, "credits": "9"}},
    {"data": {**DATA, "extra": 1}},
    {"salt": "not hex"},
    {"salt": ""},
    {"data": "not an object"},
    {"subject": 5},
])
def test_any_other_opening_is_refused(change: dict) -> None:
    salt = os.urandom(16)
    opening = {"salt": salt.hex(), "subject": PSEUDONYM, "data": DATA, **change}
    with pytest.raises(LeafError):
        open_leaf(_committed(salt), opening)


def test_a_committed_leaf_does_not_open_without_its_salt() -> None:
    with pytest.raises(LeafError, match="salt"):
        open_leaf(_committed(os.urandom(16)))


def test_two_events_of_one_learner_share_no_value() -> None:
    first, second = (json.loads(_committed(os.urandom(16))) for _ in range(2))
    assert first["commitment"] != second["commitment"]


def test_an_event_about_no_one_publishes_its_data() -> None:
    leaf = public_leaf(seq=0, prev="00" * 32, at="2026-12-02T00:00:00Z", kind="agreement.complete",
                       data={"agreement": "a-1"})
    event = open_leaf(leaf)
    assert event.public and event.subject is None and event.data == {"agreement": "a-1"}


def test_a_v1_leaf_reads_as_before_and_its_subject_opens_with_the_learner_salt() -> None:
    learner_salt = os.urandom(16)
    leaf = canonicalize({"v": 1, "seq": 0, "prev": "00" * 32, "at": "2026-11-23T01:02:03Z",
                         "kind": "achievement.deposited", "subject": v1_subject(learner_salt, PSEUDONYM),
                         "data": DATA})
    unproven = open_leaf(leaf)
    assert unproven.version == 1 and unproven.subject is None and unproven.data == DATA
    proven = open_leaf(leaf, {"salt": learner_salt.hex(), "subject": PSEUDONYM})
    assert proven.subject == PSEUDONYM
    with pytest.raises(LeafError, match="subject"):
        open_leaf(leaf, {"salt": learner_salt.hex(), "subject": "urn:uuid:someone-else"})


@pytest.mark.parametrize("leaf", [
    b"not json", b"[]", b'{"v":2}', b'{"v":3,"seq":0,"prev":"","at":"","kind":"k"}',
    b'{"v":2,"seq":0,"prev":"","at":"","kind":"k"}', b'{"v":true,"seq":0,"prev":"","at":"","kind":"k"}',
    b'{"v":2,"seq":0,"prev":"","at":"","kind":"k","data":1}', b"\xff\xfe",
])
def test_malformed_leaves_are_refused(leaf: bytes) -> None:
    with pytest.raises(LeafError):
        open_leaf(leaf, {"salt": "00" * 16, "data": {}})


def test_a_salt_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(LeafError):
        commitment(b"short", b"{}")
