"""The roles of the node. Every route names the roles it allows (deny by default, see node.deps).

`ROLE_DESCRIPTIONS` says in one line what each role is for; `ROLE_ORGANISATION_KINDS` where a staff member holding
it may sit (checked when administrators give roles or move staff, docs/organisations.md); `operations_by_role`
derives from the app's routes what each role may call (`creditnode roles`, `GET /api/v1/admin/roles`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ALL_STAFF_ROLES",
    "ROLE_DESCRIPTIONS",
    "ROLE_ORGANISATION_KINDS",
    "Operation",
    "Role",
    "operations_by_role",
]


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
    EXPERT = "expert"  # member of a 双证融通 project's expert panel (docs/projects.md)
    ASSESSOR = "assessor"  # assesses recognition-of-prior-learning portfolios (docs/projects.md)


ALL_STAFF_ROLES = frozenset(
    v for k, v in vars(Role).items() if k.isupper() and v != Role.LEARNER
)

ROLE_DESCRIPTIONS: dict[str, str] = {
    Role.LEARNER: "a learner: their own account, archive, applications, conversions, consents and transcripts",
    Role.OUTLET_STAFF: "counter staff at an outlet or branch: open learner accounts, apply for a learner with "
                       "evidence, follow the applications they started",
    Role.BRANCH_REVIEWER: "first review (初审) of individual deposits in their branch's queue; at the centre, in "
                          "every queue",
    Role.CENTRE_REVIEWER: "second review (复审) of individual deposits, corrections and revocations of outcomes, "
                          "re-routing applications between branches",
    Role.INSTITUTION_UPLOADER: "an institution's people or systems (API keys): bulk deposits of its own outcomes, "
                               "and its 双证融通 project applications",
    Role.STANDARDS_ADMIN: "the catalogue, the qualifications framework and the versioned conversion rules",
    Role.FEDERATION_ADMIN: "the federation: node keys, peers, membership votes, agreements, delivery",
    Role.AUDITOR: "reads the audit log and import reports (read-only)",
    Role.NODE_ADMIN: "organisations, staff accounts and institution API keys",
    Role.EXPERT: "a 双证融通 expert panel member: reviews the projects the centre assigns and votes with a comment",
    Role.ASSESSOR: "assesses a learner's prior-learning portfolio against a catalogue standard and proposes credits",
}

# Where a staff member holding the role may belong (kinds of their organisation).
ROLE_ORGANISATION_KINDS: dict[str, frozenset[str]] = {
    Role.OUTLET_STAFF: frozenset({"outlet", "branch", "centre"}),
    Role.BRANCH_REVIEWER: frozenset({"branch", "centre"}),
    Role.CENTRE_REVIEWER: frozenset({"centre"}),
    Role.INSTITUTION_UPLOADER: frozenset({"institution"}),
    Role.STANDARDS_ADMIN: frozenset({"centre"}),
    Role.FEDERATION_ADMIN: frozenset({"centre"}),
    Role.AUDITOR: frozenset({"centre"}),
    Role.NODE_ADMIN: frozenset({"centre"}),
    # experts come from universities, the appraisal centre and the bank (seed-001 二（一）)
    Role.EXPERT: frozenset({"centre", "branch", "outlet", "institution"}),
    Role.ASSESSOR: frozenset({"centre", "branch", "outlet"}),
}


@dataclass(frozen=True, order=True)
class Operation:
    path: str
    method: str
    summary: str


def operations_by_role(routes: Iterable[Any]) -> tuple[dict[str, list[Operation]], list[Operation]]:
    """What each role may call, read from the routes' declared dependencies (`require_roles` / `public`):
    ({role: operations}, public operations). Peer routes (`/federation/…`) are signed by nodes, not people,
    and are left out."""
    from fastapi.routing import APIRoute, iter_route_contexts

    by_role: dict[str, set[Operation]] = {role: set() for role in ROLE_DESCRIPTIONS}
    public: set[Operation] = set()
    for context in iter_route_contexts(list(routes)):
        route = context.original_route
        if not isinstance(route, APIRoute) or context.path.startswith("/federation/"):
            continue
        stack, roles, is_public = list(route.dependant.dependencies), set(), False
        while stack:
            dep = stack.pop()
            roles.update(getattr(dep.call, "allowed_roles", ()))
            is_public = is_public or bool(getattr(dep.call, "is_public", False))
            stack.extend(dep.dependencies)
        summary = route.summary or (route.description or "").strip().split("\n")[0] or route.name.replace("_", " ")
        for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
            operation = Operation(context.path, method, summary)
            if is_public:
                public.add(operation)
            for role in roles:
                by_role.setdefault(role, set()).add(operation)
    return {role: sorted(ops) for role, ops in by_role.items()}, sorted(public)
