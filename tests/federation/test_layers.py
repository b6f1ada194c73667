"""`federation` imports `crypto`, `config` and node's models/db/context/deps/errors/audit/roles — never a router."""

from __future__ import annotations

import ast
from pathlib import Path

ALLOWED_NODE = {"node.models", "node.db", "node.context", "node.deps", "node.errors", "node.audit.service",
                "node.roles", "node.models.types",
                # the edge's check of text no database stores, applied to verified peer bodies
                "node.middleware",
                # services (not routers) that consent and transfer need: credentials, status lists, the ledger
                "node.credentials.context", "node.credentials.service", "node.credentials.status",
                "node.credentials.verify", "node.ledger.log", "node.ledger.service",
                # verification hands members' DID documents, status lists and logs to node (use_peer_lookup)
                "node.credentials.resolvers",
                # the demo's export checks the learner's transcript PDF (reads its embedded presentation)
                "node.credentials.pdf",
                # the deliberate faults' helpers, called only from FAULT HOOK lines (test mode)
                "node.testing.faults",
                # the one job registry (federation/jobs.py) also runs the node's import retention job
                "node.imports.results",
                # ... and the statistics' counting job (node/stats/counting.py)
                "node.stats.counting",
                # ... and registers the engagement area's jobs (engage.*: points, notices, deliveries)
                "node.engage.jobs",
                # ... and the 双证融通 projects' scheduled exemption report (projects.report_exemptions)
                "node.projects.jobs",
                # a transfer's completion is a decision that statistics and notices listen to (node/decisions.py)
                "node.decisions",
                # the discovery document is one of the fast lane's reads (node/fastlane.py registers it)
                "node.fastlane"}


def test_federation_imports_only_allowed_node_modules() -> None:
    root = Path(__file__).resolve().parents[2] / "federation"
    bad = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                if name.startswith("node") and name not in ALLOWED_NODE:
                    bad.append(f"{path.name}: {name}")
    assert bad == []
