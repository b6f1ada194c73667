"""The signed member list: genesis threshold, chaining, admission and removal, the store."""

from __future__ import annotations

import copy

import pytest

from federation.errors import MembershipRefused
from federation.membership import (
    check_admission,
    check_membership,
    founding_document,
    held_membership,
    membership_hash,
    merge_proofs,
    next_version,
    parse_document,
    sign_membership,
    unsecured,
)
from federation.runtime import runtime
from tests.federation.conftest import fake_identity


def _check(fed, doc, held=None):
    with fed.a.session() as s:
        return check_membership(doc, held=held, resolve_did=runtime(fed.a.ctx).directory.resolver(s))


def test_founding_file_lists_the_four_regions_with_did_web() -> None:
    doc = parse_document(founding_document())
    assert [m.node_id for m in doc.members] == ["shanghai", "jiangsu", "zhejiang", "anhui"]
    assert doc.threshold == 3 and doc.version == 1 and doc.previous is None
    assert doc.member("shanghai").did == "did:web:127.0.0.1%3A8101"


def test_hash_ignores_proofs_and_is_jcs_sha256(federation) -> None:
    doc = founding_document()
    signed = federation.genesis("shanghai")
    assert membership_hash(doc) == membership_hash(signed)
    reordered = dict(reversed(list(doc.items())))
    assert membership_hash(reordered) == membership_hash(doc)
    assert membership_hash({**doc, "threshold": 4}) != membership_hash(doc)


def test_genesis_signed_by_three_of_four_is_accepted(federation) -> None:
    doc = federation.genesis("shanghai", "zhejiang", "jiangsu")
    check = _check(federation, doc)
    assert check.ok, check.refusals
    assert check.signers == ["jiangsu", "shanghai", "zhejiang"]
    federation.install(doc)
    with federation.b.session() as s:
        held = held_membership(s)
        assert held.version == 1 and held.hash == membership_hash(doc)


def test_genesis_signed_by_two_of_four_is_refused(federation) -> None:
    doc = federation.genesis("shanghai", "anhui")
    check = _check(federation, doc)
    assert [r.code for r in check.refusals] == ["below_threshold"]
    with pytest.raises(MembershipRefused) as info:
        federation.install(doc, federation.a)
    assert info.value.code == "below_threshold"
    with federation.a.session() as s:
        assert held_membership(s) is None


def test_the_same_member_signing_twice_counts_once(federation) -> None:
    doc = federation.genesis("shanghai", "anhui")
    again = federation.identity("anhui").sign(unsecured(doc), created="2026-01-02T00:00:00Z")
    twice = merge_proofs(doc, again)
    assert len(twice["proof"]) == 3
    assert [r.code for r in _check(federation, twice).refusals] == ["below_threshold"]


def test_a_proof_by_a_non_member_or_over_other_content_does_not_count(federation) -> None:
    stranger = fake_identity("http://127.0.0.1:9999", b"s" * 32)
    doc = sign_membership(federation.genesis("shanghai", "zhejiang"), stranger)
    assert [r.code for r in _check(federation, doc).refusals] == ["below_threshold"]
    # Jiangsu's proof made over a different document does not verify for this one.
    other = sign_membership({**founding_document(), "federation": "other"}, federation.identity("jiangsu"))
    forged = federation.genesis("shanghai", "zhejiang")
    forged["proof"] = [*forged["proof"], *other["proof"]]
    assert [r.code for r in _check(federation, forged).refusals] == ["below_threshold"]


def test_threshold_must_be_a_majority(federation) -> None:
    doc = {**founding_document(), "threshold": 2}
    for name in ("shanghai", "zhejiang", "jiangsu"):
        doc = sign_membership(doc, federation.identity(name))
    assert "threshold_too_low" in [r.code for r in _check(federation, doc).refusals]


def test_unchained_versions_are_refused(joined) -> None:
    with joined.a.session() as s:
        held = held_membership(s).document
    proposal = next_version(held, members=held["members"], threshold=3)
    signers = ("shanghai", "zhejiang", "jiangsu")

    def signed(doc: dict) -> dict:
        for name in signers:
            doc = sign_membership(doc, joined.identity(name))
        return doc

    good = signed(proposal)
    assert _check(joined, good, held).ok
    wrong_previous = signed({**proposal, "previous": "0" * 64})
    assert [r.code for r in _check(joined, wrong_previous, held).refusals] == ["not_chained"]
    skipped = signed({**proposal, "version": 3})
    assert [r.code for r in _check(joined, skipped, held).refusals] == ["wrong_version"]
    another_genesis = signed(founding_document())
    with pytest.raises(MembershipRefused) as info:
        joined.install({**another_genesis, "federation": "fork"}, joined.a)
    assert info.value.code == "not_chained"
    joined.install(good)
    with joined.a.session() as s:
        assert held_membership(s).version == 2
    # version 2 again (a different document) no longer chains
    with pytest.raises(MembershipRefused):
        joined.install(signed({**proposal, "note": "other"}), joined.a)


def _report(identity, *, outcomes=("passed", "passed"), passed=True, did=None) -> dict:
    report = {
        "type": "ConformanceReport",
        "node": {"node_id": "fujian", "did": did or identity.did, "base_url": "http://127.0.0.1:8105"},
        "suite": {"name": "creditnode-conformance", "version": "1.0.0"},
        "results": [{"test": f"t{i}", "rule": f"§{i}", "outcome": o} for i, o in enumerate(outcomes)],
        "passed": passed,
    }
    return identity.sign(report)


def _admission_proposal(held: dict, candidate, report: dict) -> dict:
    member = {"node_id": "fujian", "name_zh": "福建", "name_en": "Fujian", "did": candidate.did,
              "base_url": "http://127.0.0.1:8105", "roles": ["member"]}
    admission = {"node_id": "fujian", "didDocument": candidate.did_document(), "conformanceReport": report}
    return next_version(held, members=[*held["members"], member], threshold=3, admission=admission)


def test_admitting_a_member_needs_its_signed_passing_conformance_report(joined) -> None:
    candidate = fake_identity("http://127.0.0.1:8105", b"f" * 32)
    with joined.a.session() as s:
        held = held_membership(s).document
    member = _admission_proposal(held, candidate, _report(candidate))
    for name in ("shanghai", "zhejiang", "anhui"):
        member = sign_membership(member, joined.identity(name))
    assert _check(joined, member, held).ok

    no_admission = {k: v for k, v in unsecured(member).items() if k != "admission"}
    for name in ("shanghai", "zhejiang", "anhui"):
        no_admission = sign_membership(no_admission, joined.identity(name))
    assert [r.code for r in _check(joined, no_admission, held).refusals] == ["admission_required"]

    parsed = parse_document(member).member("fujian")
    failed = _report(candidate, outcomes=("passed", "failed"), passed=False)
    codes = [r.code for r in check_admission({"node_id": "fujian", "didDocument": candidate.did_document(),
                                              "conformanceReport": failed}, parsed)]
    assert codes and set(codes) == {"admission_invalid"}
    tampered = copy.deepcopy(_report(candidate))
    tampered["results"].append({"test": "extra", "rule": "x", "outcome": "passed"})
    reasons = check_admission({"node_id": "fujian", "didDocument": candidate.did_document(),
                               "conformanceReport": tampered}, parsed)
    assert any("does not verify" in r.message for r in reasons)
    by_other = _report(joined.identity("anhui"), did=candidate.did)
    reasons = check_admission({"node_id": "fujian", "didDocument": candidate.did_document(),
                               "conformanceReport": by_other}, parsed)
    assert any("not by the candidate" in r.message for r in reasons)


def test_admission_needs_previous_members_signatures(joined) -> None:
    candidate = fake_identity("http://127.0.0.1:8105", b"f" * 32)
    with joined.a.session() as s:
        held = held_membership(s).document
    proposal = _admission_proposal(held, candidate, _report(candidate))
    # the candidate's own proof does not count: it is not a member of the previous version
    doc = proposal
    for identity in (joined.identity("shanghai"), joined.identity("zhejiang"), candidate):
        doc = sign_membership(doc, identity)
    assert [r.code for r in _check(joined, doc, held).refusals] == ["below_threshold"]


def test_removal_needs_a_removal_entry(joined) -> None:
    with joined.a.session() as s:
        held = held_membership(s).document
    remaining = [m for m in held["members"] if m["node_id"] != "anhui"]
    bare = next_version(held, members=remaining, threshold=2)
    declared = next_version(held, members=remaining, threshold=2,
                            removal={"node_id": "anhui", "reason": "left the federation"})
    for name in ("shanghai", "zhejiang", "jiangsu"):
        bare = sign_membership(bare, joined.identity(name))
        declared = sign_membership(declared, joined.identity(name))
    assert [r.code for r in _check(joined, bare, held).refusals] == ["removal_required"]
    check = _check(joined, declared, held)
    assert check.ok and check.needed == 3


def test_merge_proofs_collects_a_proof_set(federation) -> None:
    one = federation.genesis("shanghai")
    two = federation.genesis("jiangsu")
    merged = merge_proofs(one, two, one)
    assert len(merged["proof"]) == 2
    with pytest.raises(MembershipRefused):
        merge_proofs(one, {**two, "threshold": 4})
