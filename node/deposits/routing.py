"""Which branch takes an individual deposit application, and which applications a staff member may see.

As in the seeds, a district branch (区县分部) gives the first review and the centre the second. An application is
routed once, when it is started, to (in this order):

1. the branch the applicant named (`branch_code`; the learner may pick any active branch, or the centre);
2. the branch of the outlet (or branch) whose staff member started it on the learner's behalf;
3. the learner's home branch: the branch of the outlet (or the branch) whose staff opened the account;
4. otherwise the centre's own queue (`branch_id` NULL).

A reviewer sees and decides the applications of their branch only (an outlet's reviewer: its branch's); the
centre's reviewers see every queue and may re-route: reviewers whose organisation is the centre, centre reviewers
(a role held only at the centre, `node.roles.ROLE_ORGANISATION_KINDS`) and node-level accounts without an
organisation. Written up in
docs/review-workflow.md.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlmodel import Session

from node.audit.service import record
from node.decisions import Decision, publish
from node.deposits import repository as repo
from node.deposits.workflow import FINAL_STATES
from node.deps import Principal
from node.errors import BadRequest, Conflict, Forbidden, NotFound
from node.models import DepositApplication, Learner, Organisation
from node.roles import Role

__all__ = [
    "QueueScope",
    "branch_codes",
    "can_see",
    "queue_scope",
    "reroute",
    "reroute_queue",
    "route_new",
    "routing_target",
]

_TARGET = "deposit_application"
_REVIEWERS = frozenset({Role.BRANCH_REVIEWER, Role.CENTRE_REVIEWER})


@dataclass(frozen=True)
class QueueScope:
    """The queues a staff member works on as a reviewer: every one (the centre), one branch's, or none."""

    everything: bool = False
    branch_id: int | None = None

    @property
    def empty(self) -> bool:
        return not self.everything and self.branch_id is None

    def covers(self, branch_id: int | None) -> bool:
        return self.everything or (self.branch_id is not None and branch_id == self.branch_id)


def _branch_of(org: Organisation | None, parent: Organisation | None) -> Organisation | None:
    """The active branch an organisation belongs to: itself if a branch, its parent if an outlet."""
    if org is None or not org.active:
        return None
    if org.kind == "branch":
        return org
    if org.kind == "outlet" and parent is not None and parent.kind == "branch" and parent.active:
        return parent
    return None


def _org_and_parent(session: Session, org_id: int | None) -> tuple[Organisation | None, Organisation | None]:
    org = session.get(Organisation, org_id) if org_id is not None else None
    parent = session.get(Organisation, org.parent_id) if org is not None and org.parent_id else None
    return org, parent


def queue_scope(session: Session, staff: Principal) -> QueueScope:
    """A reviewer's scope, from their organisation (see the module's docstring)."""
    if staff.kind != "staff" or not staff.has_any(_REVIEWERS):
        return QueueScope()
    if staff.organisation_id is None or Role.CENTRE_REVIEWER in staff.roles:
        return QueueScope(everything=True)
    org, parent = _org_and_parent(session, staff.organisation_id)
    if org is not None and org.kind == "centre":
        return QueueScope(everything=True)
    branch = _branch_of(org, parent)
    return QueueScope(branch_id=branch.id if branch else None)


def can_see(scope: QueueScope, staff: Principal, app: DepositApplication) -> bool:
    """A reviewer sees their scope's applications; anyone sees the applications they started themselves."""
    return scope.covers(app.branch_id) or (app.submitted_by_staff_id is not None
                                           and app.submitted_by_staff_id == staff.id)


def routing_target(session: Session, code: str) -> Organisation | None:
    """A branch an application may be routed to by name: an active branch (→ it) or the centre (→ None)."""
    org = repo.organisation_by_code(session, code)
    if org is None or not org.active or org.kind not in ("branch", "centre"):
        raise BadRequest(f"{code!r} is not an active branch", code="invalid_branch")
    return org if org.kind == "branch" else None


def route_new(session: Session, *, actor: Principal, learner: Learner, branch_code: str | None) -> int | None:
    """The branch a new application goes to (None: the centre's queue)."""
    if branch_code:
        chosen = routing_target(session, branch_code)
        return chosen.id if chosen else None
    if actor.kind == "staff":
        branch = _branch_of(*_org_and_parent(session, actor.organisation_id))
        if branch is not None:
            return branch.id
    branch = _branch_of(*_org_and_parent(session, learner.home_org_id))
    return branch.id if branch is not None else None


def branch_codes(session: Session, apps: list[DepositApplication]) -> dict[int, str]:
    orgs = repo.organisations_by_id(session, {a.branch_id for a in apps})
    return {i: o.code for i, o in orgs.items()}


def _check_may_reroute(session: Session, staff: Principal) -> None:
    if not queue_scope(session, staff).everything:
        raise Forbidden("only the centre re-routes applications between branches")


def reroute(session: Session, *, app: DepositApplication, to_code: str, actor: Principal,
            version: int) -> DepositApplication:
    """The centre moves an open application to another branch's queue (or its own)."""
    _check_may_reroute(session, actor)
    if app.state in FINAL_STATES:
        raise Conflict(f"cannot re-route an application in state {app.state}", code="illegal_transition",
                       detail={"state": app.state, "action": "route"})
    target = routing_target(session, to_code)
    new_branch = target.id if target else None
    old_branch = app.branch_id
    if app.version != version or not repo.compare_and_set_application(
        session, app.id, expected_version=version, values={"branch_id": new_branch}
    ):
        raise Conflict("the application changed since you read it; reload and try again", code="stale_version",
                       detail={"expected_version": version})
    session.refresh(app)
    codes = {i: o.code for i, o in repo.organisations_by_id(session, {old_branch, new_branch}).items()}
    entry = record(session, actor=actor, action="deposit.route", target_type=_TARGET, target_id=app.id,
                   detail={"from": codes.get(old_branch, "centre"), "to": codes.get(new_branch, "centre")})
    _moved(session, app, entry.at)
    return app


def _moved(session: Session, app: DepositApplication, at: dt.datetime) -> None:
    """A re-routing is a queue move for the statistics (node.decisions)."""
    publish(session, Decision(kind="deposit.route", learner_id=app.learner_id, subject_id=app.id, at=at,
                              subject=app))


def reroute_queue(session: Session, *, branch: Organisation, to_code: str, actor: Principal) -> list[int]:
    """Move every open application of `branch` to another branch (or the centre): used when a branch is
    deactivated (by a node administrator). Each move is audited. Returns the ids moved."""
    target = routing_target(session, to_code)
    if target is not None and target.id == branch.id:
        raise BadRequest("re-route to another branch than the one deactivated", code="invalid_branch")
    moved = []
    final = [s.value for s in FINAL_STATES]
    for app_id in repo.open_application_ids(session, branch_id=branch.id, final_states=final):
        app = session.get(DepositApplication, app_id)
        if app is None:
            raise NotFound("no such application")
        if not repo.compare_and_set_application(session, app.id, expected_version=app.version,
                                                values={"branch_id": target.id if target else None}):
            raise Conflict("an application changed meanwhile; try again", code="stale_version",
                           detail={"application": app.id})
        session.refresh(app)
        moved.append(app.id)
        entry = record(session, actor=actor, action="deposit.route", target_type=_TARGET, target_id=app.id,
                       detail={"from": branch.code, "to": target.code if target else "centre",
                               "reason": "branch deactivated"})
        _moved(session, app, entry.at)
    return moved
