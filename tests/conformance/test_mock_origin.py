"""The harness as an origin node produces releases the reference implementation accepts (its pure
`verify_release`), and marks a revoked record as revoked: so a node failing the destination tests is wrong,
not the harness."""

from __future__ import annotations

import secrets

import pytest

from federation.membership import Member
from federation.transfers.transfer import verify_release
from tests.conformance.nodes import CONFORMANCE_PATH


@pytest.fixture
def peer(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(CONFORMANCE_PATH))  # the suite's package, installed or not
    from conformance.peer import MockPeer

    made = MockPeer()
    made.node_under_test = "shanghai"
    yield made
    made.stop()


def test_mock_origin_release_verifies(peer) -> None:
    origin = peer.origin
    pseudonym = "urn:uuid:0b8a4a9e-0000-4000-8000-000000000001"
    kept = origin.issue(pseudonym, title="高等数学", credits="4", hours="64", course_code="ZJOU-MATH101")
    dropped = origin.issue(pseudonym, title="线性代数", credits="2.5", hours="40", course_code="ZJOU-LA102")
    origin.issue("urn:uuid:someone-else", title="其他", credits="1", hours="16", course_code="X")
    origin.revoke_credential(dropped)
    consent = origin.consent(pseudonym=pseudonym, destination="shanghai", destination_did="did:web:127.0.0.1%3A8101",
                             holder_binding="hb1." + secrets.token_urlsafe(32), credentials=[kept, dropped])
    status, release = origin.release("shanghai", {"consent": consent})
    assert status == 200
    member = Member(node_id=peer.node_id, did=peer.did, base_url=peer.base_url)
    verified = verify_release(release, origin=member, did_document=peer.did_document(), pseudonym=pseudonym,
                              consent=consent)
    states = {item.credential_id: item.state for item in verified.items}
    assert states == {kept["id"]: "ok", dropped["id"]: "credential_revoked"}, verified.items
    assert verified.checkpoint_size == 3

    assert origin.release("jiangsu", {"consent": consent})[1]["code"] == "wrong_destination"
    assert origin.release("shanghai", {"consent": {**consent, "id": "urn:uuid:x"}})[1]["code"] == "consent_unknown"
