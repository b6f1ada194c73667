"""The test membership that admits the harness (the contract of conformance-tests/README.md), and the first
signed exchange with the node (docs/federation.md §2–3)."""

from __future__ import annotations

import pytest

F2 = "docs/federation.md §2"
F3 = "docs/federation.md §3"


@pytest.mark.rule(f"{F2} a node accepts peers listed in the membership it holds (test membership)")
@pytest.mark.requires("discovery")
@pytest.mark.provides("membership")
def test_test_membership_installed(harness) -> None:
    node, peer = harness.node, harness.peer
    node.admin_ok("POST", "/api/v1/testing/reset", {"node_ids": [peer.node_id]})
    installed = node.admin_ok("POST", "/api/v1/testing/membership", {"members": [peer.member()]})
    doc = installed["document"]
    assert any(m["did"] == peer.did for m in doc["members"])
    discovery = node.discovery(refresh=True)
    assert discovery["membership"]["hash"] == installed["hash"], "discovery does not show the held version"
    harness.seq = 0


@pytest.mark.rule(f"{F3} a correctly signed request from a member is accepted")
@pytest.mark.requires("membership")
@pytest.mark.provides("signed_exchange")
def test_signed_request_accepted(harness) -> None:
    envelope, ex = harness.ping("first signed request", token="hello")
    assert ex.status == 200, (ex.status, ex.body)
    assert ex.body.get("pong") == "hello", ex.body
    harness.facts["first_message"] = envelope


@pytest.mark.rule(f"{F3} responses are signed, bound to the request's nonce")
@pytest.mark.requires("signed_exchange")
def test_response_signed(harness) -> None:
    ex = harness.node.exchanges[-1]
    assert ex.response_signed, ex.response_problem
    assert ex.response_bound, "the response signature does not carry the request's nonce"
    assert ex.response_key_id and ex.response_key_id.startswith(harness.facts["discovery"]["did"] + "#")
