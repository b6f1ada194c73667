"""Every router of the node, in one list (`create_app` includes them)."""

from __future__ import annotations

from federation.router import ROUTERS as FEDERATION_ROUTERS
from node.archive.router import router as archive_router
from node.audit.router import router as audit_router
from node.auth.router import router as auth_router
from node.conversion.router import router as conversion_router
from node.credentials.router import router as credentials_router
from node.deposits.router import router as deposits_router
from node.engage.router import router as engage_router
from node.evidence.router import router as evidence_router
from node.imports.router import router as imports_router
from node.learners.router import router as learners_router
from node.ledger.router import router as ledger_router
from node.org.router import router as org_router
from node.privacy.router import router as privacy_router
from node.projects.router import router as projects_router
from node.rpl.router import router as rpl_router
from node.standards.router import router as standards_router
from node.stats.router import router as stats_router
from node.testing.router import router as testing_router

__all__ = ["ROUTERS"]

# Routing tries the routers in this order, each costing a little per request (docs/performance.md): the most
# requested first (the learner's reads, discovery and the peer inbox). No two routers serve the same path.
ROUTERS = [archive_router, *FEDERATION_ROUTERS, credentials_router]
ROUTERS += [auth_router, learners_router, org_router, imports_router]
ROUTERS += [deposits_router, evidence_router, audit_router]
ROUTERS += [projects_router, rpl_router]  # 双证融通 projects, recognition of prior learning (docs/projects.md)
ROUTERS += [standards_router, conversion_router, ledger_router, stats_router]
ROUTERS += [engage_router, privacy_router]  # points, notices, data rights, counselling, erasure (issue 16)
ROUTERS += [testing_router]  # refused unless federation.test_mode (conformance-tests/README.md)
