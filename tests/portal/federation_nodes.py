"""Two live nodes on 127.0.0.1, federated with each other, for browser journeys that cross regions.

`federated_nodes` (module scope) serves Shanghai (`a`) and Zhejiang (`b`) with uvicorn on free ports of 127.0.0.1,
each with its own database (SQLite, or PostgreSQL with CREDITNODE_TEST_DATABASE_URL) and its region's standards,
and installs on both a genesis membership of these two members (threshold 2) signed by both — so they talk to each
other over real HTTP with RFC 9421 signatures, DID documents fetched from each other. Each node has a federation
administrator `fedadmin` (password `PASSWORD`). The outbox scheduler is off: `deliver()` runs each node's outbox
job until nothing is left to send, so a test decides when messages travel.

To use it in another test module: `from tests.portal.federation_nodes import federated_nodes  # noqa: F401`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.portal.conftest import LiveNode, serve_node

__all__ = ["PASSWORD", "FederatedNodes", "federated_nodes", "serve_node"]

PASSWORD = "fed-admin-pass-1"


@dataclass
class FederatedNodes:
    a: LiveNode
    b: LiveNode
    membership: dict = field(default_factory=dict)

    def deliver(self, rounds: int = 10) -> int:
        """Run both nodes' outbox job until neither has anything to send now; the number of messages sent."""
        from federation.outbox import flush_outbox

        sent = 0
        for _ in range(rounds):
            now = flush_outbox(self.a.ctx).sent + flush_outbox(self.b.ctx).sent
            sent += now
            if now == 0:
                return sent
        return sent


def _genesis(a: LiveNode, b: LiveNode) -> dict:
    """A founding membership of the two live nodes (their real addresses and DIDs), signed by both."""
    from crypto.did import did_web_from_url
    from federation.membership import founding_document, sign_membership

    document = founding_document()
    members = []
    for node in (a, b):
        member = next(m for m in document["members"] if m["node_id"] == node.ctx.node_id)
        members.append({**member, "base_url": node.base, "did": did_web_from_url(node.base)})
    document.update(members=members, threshold=2)
    for node in (a, b):
        document = sign_membership(document, node.ctx.identity)
    return document


@pytest.fixture(scope="module")
def federated_nodes(_db_template: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FederatedNodes]:
    from federation.membership import install_membership
    from federation.runtime import runtime
    from node.db import session_scope
    from node.org.service import create_staff

    tmp = tmp_path_factory.mktemp("federated")
    with serve_node(_db_template, tmp, "shanghai") as a, serve_node(_db_template, tmp, "zhejiang") as b:
        genesis = _genesis(a, b)
        for node in (a, b):
            with session_scope(node.ctx.engine) as s:
                install_membership(s, genesis, resolve_did=runtime(node.ctx).directory.resolver(s))
                create_staff(s, username="fedadmin", display_name="联盟管理员", password=PASSWORD,
                             roles=["federation_admin"])
        yield FederatedNodes(a, b, genesis)
