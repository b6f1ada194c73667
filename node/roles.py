"""The roles of the node. Every route names the roles it allows (deny by default, see node.deps)."""

from __future__ import annotations

__all__ = ["ALL_STAFF_ROLES", "Role"]


class Role:
    LEARNER = "learner"
    OUTLET_STAFF = "outlet_staff"  # processes applications at a university outlet or branch counter
    BRANCH_REVIEWER = "branch_reviewer"  # first review of individual deposits
    CENTRE_REVIEWER = "centre_reviewer"  # second review
    INSTITUTION_UPLOADER = "institution_uploader"  # bulk deposits (people or API keys)
    STANDARDS_ADMIN = "standards_admin"  # catalogue, framework, conversion rules
    FEDERATION_ADMIN = "federation_admin"  # keys, peers, membership, agreements
    AUDITOR = "auditor"  # reads the audit log
    NODE_ADMIN = "node_admin"  # organisations, staff accounts, API keys


ALL_STAFF_ROLES = frozenset(
    v for k, v in vars(Role).items() if k.isupper() and v != Role.LEARNER
)
