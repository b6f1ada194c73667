"""The project workflow. Services only flush; the request's session commits (docs/projects.md).

draft ──submit (institution; evidence attached)──▶ submitted ──assign panel (standards admin)──▶ in_review
──votes (every panel member once)──▶ recommended | not_recommended
recommended ──publish (standards admin A: the proposed rules become drafts made by A)──▶ activating
──activate (standards admin B ≠ A: the rules' own maker-checker approves every draft)──▶ published
published ──suspend (rules retired)──▶ suspended ──reinstate (new rule versions, drafts)──▶ activating
published | suspended ──end (rules retired)──▶ ended;   submitted … activating ──reject (reason)──▶ rejected

Every step is audited and appended to the ledger as a public event (a project concerns an institution, no person).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from crypto.jcs import canonicalize
from node.audit.service import record
from node.deps import Principal
from node.errors import BadRequest, Conflict, Forbidden, NotFound
from node.evidence import repository as evidence_repo
from node.evidence.storage import StoredFile
from node.ledger.service import EventSpec, append_events
from node.projects.steps import expect_state, touch
from node.models import EvidenceFile, Organisation, StaffAccount, utcnow
from node.models.standards import StandardRule
from node.models.projects import DcExemptionReport, DcProject, DcProjectEvidence, DcProjectPanel, DcProjectVote
from node.roles import Role
from node.rules import RuleInvalid, parse_rule, validate_rule
from node.rules.levels import vocational_rank
from node.standards import service as standards

__all__ = [
    "activate",
    "add_evidence",
    "assign_panel",
    "create_project",
    "current_refs",
    "end",
    "evidence_of",
    "expect",
    "experts",
    "staff_names",
    "panel_of",
    "project_for",
    "projects",
    "publish",
    "reinstate",
    "record_report",
    "reject",
    "submit",
    "suspend",
    "vote",
    "votes_of",
]

_TARGET = "dc_project"
_RULE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,80}$")


def _event(session: Session, project: DcProject, kind: str, **data: Any) -> int:
    (seq,) = append_events(session, [EventSpec(kind=kind, public=True, data={
        "project": project.id, "institution": project.institution_code, "programme": project.programme_code,
        "certificate": project.certificate_code, "level": project.certificate_level, "mode": project.mode,
        "state": project.state, **data})])
    return seq


def _touch(session: Session, project: DcProject, state: str | None = None) -> None:
    touch(session, project, state)


def expect(project: DcProject, states: tuple[str, ...], action: str, version: int | None = None) -> None:
    """Check the state (and the version the caller read) on the row as it is now (node.projects.steps)."""
    expect_state(project, states, action, version, noun="project", code="project_illegal_transition")


# -- reading ----------------------------------------------------------------------------------------


def _org(session: Session, principal: Principal) -> Organisation | None:
    return session.get(Organisation, principal.organisation_id) if principal.organisation_id else None


def panel_of(session: Session, project_id: int) -> list[int]:
    return list(session.exec(select(DcProjectPanel.staff_id).where(DcProjectPanel.project_id == project_id)
                             .order_by(DcProjectPanel.staff_id)).all())


def votes_of(session: Session, project_id: int) -> list[DcProjectVote]:
    return list(session.exec(select(DcProjectVote).where(DcProjectVote.project_id == project_id)
                             .order_by(DcProjectVote.id)).all())


def evidence_of(session: Session, project_id: int) -> list[EvidenceFile]:
    return list(session.exec(select(EvidenceFile).join(DcProjectEvidence, DcProjectEvidence.sha256 == EvidenceFile.sha256)
                             .where(DcProjectEvidence.project_id == project_id)
                             .order_by(EvidenceFile.sha256)).all())


def may_read(session: Session, project: DcProject, principal: Principal) -> bool:
    """The applying institution, the centre's standards admins and auditors, and the project's panel."""
    if principal.has_any(frozenset({Role.STANDARDS_ADMIN, Role.AUDITOR})):
        return True
    if Role.INSTITUTION_UPLOADER in principal.roles and principal.organisation_id == project.organisation_id:
        return True
    return (Role.EXPERT in principal.roles and principal.kind == "staff"
            and principal.id in panel_of(session, project.id))


def project_for(session: Session, project_id: int, principal: Principal) -> DcProject:
    """404 for a project the principal may not see (its existence is not disclosed)."""
    project = session.get(DcProject, project_id)
    if project is None or not may_read(session, project, principal):
        raise NotFound(f"no project {project_id}", code="project_not_found")
    return project


def projects(session: Session, principal: Principal, *, scope: str, state: str | None = None,
             limit: int = 200) -> list[DcProject]:
    """`scope`: `mine` (the institution's own), `panel` (the expert's), `all` (the centre)."""
    stmt = select(DcProject)
    if scope == "mine":
        stmt = stmt.where(DcProject.organisation_id == principal.organisation_id)
    elif scope == "panel":
        stmt = stmt.join(DcProjectPanel, DcProjectPanel.project_id == DcProject.id).where(
            DcProjectPanel.staff_id == principal.id)
    if state:
        stmt = stmt.where(DcProject.state == state)
    return list(session.exec(stmt.order_by(DcProject.id.desc()).limit(limit)).all())  # type: ignore[union-attr]


def current_refs(project: DcProject) -> list[dict]:
    """The newest published version of each of the project's rules (`rule_refs` keeps every version ever made)."""
    newest: dict[str, int] = {}
    for ref in project.rule_refs:
        newest[ref["id"]] = max(newest.get(ref["id"], 0), int(ref["version"]))
    return [{"id": k, "version": v} for k, v in sorted(newest.items())]


# -- the institution --------------------------------------------------------------------------------


def _check_rules(session: Session, *, rules: list[dict], mode: str, programme: str, certificate: str,
                 level: str) -> list[str]:
    problems: list[str] = []
    ids: set[str] = set()
    for i, body in enumerate(rules):
        label = f"rules[{i}]"
        body = {**body, "version": 1}
        errors = validate_rule(body)
        if errors:
            problems += [f"{label}: {e}" for e in errors[:10]]
            continue
        try:
            rule = parse_rule(body)
        except RuleInvalid as exc:
            problems += [f"{label}: {e}" for e in exc.errors[:10]]
            continue
        if rule.id in ids:
            problems.append(f"{label}: rule id {rule.id} appears twice")
        ids.add(rule.id)
        if rule.mode != mode:
            problems.append(f"{label}: the rule's mode {rule.mode} is not the project's {mode}")
        if programme not in rule.scope.programmes:
            problems.append(f"{label}: the rule must apply to the project's programme {programme}")
        if rule.exemption is not None and (rule.exemption.certificate != certificate
                                           or vocational_rank(rule.exemption.level) != vocational_rank(level)):
            problems.append(f"{label}: the exemption must be of the project's certificate {certificate} ({level})")
        if session.exec(select(sa.func.count()).select_from(StandardRule)
                        .where(StandardRule.rule_id == rule.id)).one():
            problems.append(f"{label}: a rule {rule.id} exists already; a project proposes new rule ids")
    return problems


def create_project(session: Session, *, principal: Principal, title: str, programme: str, certificate: str,
                   level: str, mode: str, discipline: str, description: str, rules: list[dict]) -> DcProject:
    org = _org(session, principal)
    if org is None or org.kind != "institution":
        raise Forbidden("a project is applied for by an institution's staff", code="project_not_institution")
    try:
        prog = standards.entry_in_force(session, "programme", programme)
        cert = standards.entry_in_force(session, "certificate", certificate)
    except NotFound as exc:
        raise BadRequest(str(exc), code="project_invalid", detail={"errors": [str(exc)]}) from exc
    problems = []
    if prog.data.get("institution_code") != org.code:
        problems.append(f"programme {programme} is not a programme of {org.code}")
    levels = cert.data.get("levels") or []
    if vocational_rank(level) is None or (levels and vocational_rank(level) not in {vocational_rank(x) for x in levels}):
        problems.append(f"certificate {certificate} has no level {level!r}")
    problems += _check_rules(session, rules=rules, mode=mode, programme=programme, certificate=certificate,
                             level=level)
    if problems:
        raise BadRequest("the project application does not validate", code="project_invalid",
                         detail={"errors": problems[:50]})
    project = DcProject(organisation_id=org.id, institution_code=org.code, title=title.strip(),
                        programme_code=programme, certificate_code=certificate, certificate_level=level.strip(),
                        mode=mode, discipline=discipline.strip(), description=description,
                        proposed_rules=[dict(r) for r in rules], state="draft",
                        applied_by=standards.actor_ref(principal))
    session.add(project)
    session.flush()
    record(session, actor=principal, action="project.create", target_type=_TARGET, target_id=project.id,
           detail={"programme": programme, "certificate": certificate, "level": level, "mode": mode,
                   "rules": [r.get("id") for r in rules]})
    return project


def _own(project: DcProject, principal: Principal) -> None:
    if principal.organisation_id != project.organisation_id:
        raise NotFound(f"no project {project.id}", code="project_not_found")


def add_evidence(session: Session, *, project: DcProject, principal: Principal, stored: StoredFile,
                 original_name: str) -> tuple[EvidenceFile, bool]:
    _own(project, principal)
    expect(project, ("draft",), "add evidence")
    row, _ = evidence_repo.ensure_file(session, sha256=stored.sha256, size=stored.size,
                                       content_type=stored.content_type, original_name=original_name)
    linked = session.get(DcProjectEvidence, (project.id, stored.sha256)) is None
    if linked:
        session.add(DcProjectEvidence(project_id=project.id, sha256=stored.sha256))
        _touch(session, project)
    record(session, actor=principal, action="project.evidence", target_type=_TARGET, target_id=project.id,
           detail={"sha256": stored.sha256, "size": stored.size, "newly_linked": linked})
    return row, linked


def submit(session: Session, *, project: DcProject, principal: Principal, version: int) -> DcProject:
    _own(project, principal)
    expect(project, ("draft",), "submit", version)
    if not evidence_of(session, project.id):
        raise Conflict("attach the project's materials (evidence) before submitting", code="evidence_required")
    _touch(session, project, "submitted")
    seq = _event(session, project, "project.submitted", title=project.title, discipline=project.discipline,
                 rules=[r.get("id") for r in project.proposed_rules])
    record(session, actor=principal, action="project.submit", target_type=_TARGET, target_id=project.id,
           detail={"ledger_seq": seq})
    return project


# -- the centre and the panel -----------------------------------------------------------------------


def assign_panel(session: Session, *, project: DcProject, admin: Principal, experts: list[int],
                 version: int) -> DcProject:
    expect(project, ("submitted",), "assign a panel", version)
    if len(set(experts)) != len(experts):
        raise BadRequest("an expert is named twice", code="project_panel_invalid")
    problems = []
    for staff_id in experts:
        staff = session.get(StaffAccount, staff_id)
        if staff is None or not staff.active or Role.EXPERT not in (staff.roles or []):
            problems.append(f"staff {staff_id} is not an active expert")
        elif staff.organisation_id is not None and staff.organisation_id == project.organisation_id:
            problems.append(f"staff {staff_id} belongs to the applying institution (conflict of interest)")
    if problems:
        raise BadRequest("the panel is not valid", code="project_panel_invalid", detail={"errors": problems})
    for staff_id in experts:
        session.add(DcProjectPanel(project_id=project.id, staff_id=staff_id, assigned_by=standards.actor_ref(admin)))
    _touch(session, project, "in_review")
    seq = _event(session, project, "project.panel_assigned", discipline=project.discipline, panel_size=len(experts))
    record(session, actor=admin, action="project.panel", target_type=_TARGET, target_id=project.id,
           detail={"experts": sorted(experts), "ledger_seq": seq})
    return project


def vote(session: Session, *, project: DcProject, expert: Principal, decision: str, comment: str) -> DcProject:
    expect(project, ("in_review",), "vote")
    panel = panel_of(session, project.id)
    if expert.id not in panel:
        raise Forbidden("only the project's panel votes on it", code="project_not_on_panel")
    if session.exec(select(DcProjectVote).where(DcProjectVote.project_id == project.id,
                                                DcProjectVote.staff_id == expert.id)).first() is not None:
        raise Conflict("you have voted on this project", code="project_already_voted")
    session.add(DcProjectVote(project_id=project.id, staff_id=expert.id, vote=decision, comment=comment.strip()))
    session.flush()
    votes = votes_of(session, project.id)
    detail: dict[str, Any] = {"vote": decision}
    if len(votes) == len(panel):
        approvals = sum(1 for v in votes if v.vote == "approve")
        outcome = "recommended" if approvals * 2 > len(votes) else "not_recommended"
        _touch(session, project, outcome)
        detail["ledger_seq"] = _event(session, project, "project.reviewed", approve=approvals,
                                      reject=len(votes) - approvals)
        detail["outcome"] = outcome
    else:
        _touch(session, project)
    record(session, actor=expert, action="project.vote", target_type=_TARGET, target_id=project.id, detail=detail)
    return project


def _draft_rules(session: Session, project: DcProject, admin: Principal) -> list[dict]:
    """Each proposed rule as a new draft version in the rules' maker-checker, made by `admin`."""
    refs = []
    own = {(r["id"], int(r["version"])) for r in project.rule_refs}
    for body in project.proposed_rules:
        newest = session.exec(select(sa.func.max(StandardRule.version))
                              .where(StandardRule.rule_id == body["id"])).one()
        if newest is not None and (body["id"], newest) not in own:
            raise Conflict(f"a rule {body['id']} was made outside this project since it was applied for",
                           code="project_rule_taken", detail={"rule_id": body["id"]})
        row = standards.create_rule(session, body={**body, "version": (newest or 0) + 1}, actor=admin)
        refs.append({"id": row.rule_id, "version": row.version})
    return refs


def publish(session: Session, *, project: DcProject, admin: Principal, version: int) -> DcProject:
    expect(project, ("recommended",), "publish", version)
    refs = _draft_rules(session, project, admin)
    project.rule_refs = [*project.rule_refs, *refs]
    project.published_by = standards.actor_ref(admin)
    _touch(session, project, "activating")
    record(session, actor=admin, action="project.publish", target_type=_TARGET, target_id=project.id,
           detail={"rules": refs})
    return project


def activate(session: Session, *, project: DcProject, admin: Principal, version: int) -> DcProject:
    """A second standards admin approves the project's rule drafts (maker-checker of node.standards)."""
    expect(project, ("activating",), "activate", version)
    refs = current_refs(project)
    for ref in refs:
        row = standards.rule_row(session, ref["id"], ref["version"])
        if row.status == "draft":
            standards.approve_rule(session, row=row, actor=admin)
    project.published_at = utcnow()
    _touch(session, project, "published")
    seq = _event(session, project, "project.published", rules=refs)
    record(session, actor=admin, action="project.activate", target_type=_TARGET, target_id=project.id,
           detail={"rules": refs, "ledger_seq": seq})
    return project


def _retire(session: Session, project: DcProject, admin: Principal, reason: str) -> list[dict]:
    retired = []
    for ref in current_refs(project):
        row = standards.rule_row(session, ref["id"], ref["version"])
        if row.status == "approved":
            standards.retire_rule(session, row=row, actor=admin, reason=f"project {project.id}: {reason}"[:1000])
            retired.append(ref)
    return retired


def reject(session: Session, *, project: DcProject, admin: Principal, reason: str, version: int) -> DcProject:
    expect(project, ("submitted", "in_review", "recommended", "not_recommended", "activating"), "reject", version)
    if project.state == "activating":
        for ref in current_refs(project):
            row = standards.rule_row(session, ref["id"], ref["version"])
            if row.status == "draft":
                standards.reject_rule(session, row=row, actor=admin, reason=reason)
    project.decision_reason = reason.strip()[:1000]
    _touch(session, project, "rejected")
    seq = _event(session, project, "project.rejected")
    record(session, actor=admin, action="project.reject", target_type=_TARGET, target_id=project.id,
           detail={"reason": reason[:200], "ledger_seq": seq})
    return project


def suspend(session: Session, *, project: DcProject, admin: Principal, reason: str, version: int) -> DcProject:
    expect(project, ("published",), "suspend", version)
    retired = _retire(session, project, admin, reason)
    project.decision_reason = reason.strip()[:1000]
    _touch(session, project, "suspended")
    seq = _event(session, project, "project.suspended", rules=retired)
    record(session, actor=admin, action="project.suspend", target_type=_TARGET, target_id=project.id,
           detail={"reason": reason[:200], "retired": retired, "ledger_seq": seq})
    return project


def reinstate(session: Session, *, project: DcProject, admin: Principal, version: int) -> DcProject:
    """New versions of the project's rules, as drafts: a second standards admin activates them again."""
    expect(project, ("suspended",), "reinstate", version)
    refs = _draft_rules(session, project, admin)
    project.rule_refs = [*project.rule_refs, *refs]
    project.published_by = standards.actor_ref(admin)
    _touch(session, project, "activating")
    record(session, actor=admin, action="project.reinstate", target_type=_TARGET, target_id=project.id,
           detail={"rules": refs})
    return project


def end(session: Session, *, project: DcProject, admin: Principal, reason: str, version: int) -> DcProject:
    expect(project, ("published", "suspended"), "end", version)
    retired = _retire(session, project, admin, reason)
    project.decision_reason = reason.strip()[:1000]
    _touch(session, project, "ended")
    seq = _event(session, project, "project.ended", rules=retired)
    record(session, actor=admin, action="project.end", target_type=_TARGET, target_id=project.id,
           detail={"reason": reason[:200], "retired": retired, "ledger_seq": seq})
    return project


# -- the report to the appraisal centre -------------------------------------------------------------


def record_report(session: Session, *, project: DcProject, admin: Principal, report: DcExemptionReport) -> None:
    """The report's public ledger event (its count and the SHA-256 of its JCS form) and audit entry."""
    digest = hashlib.sha256(canonicalize(report.document)).hexdigest()
    report.ledger_seq = _event(session, project, "project.exemptions_reported", report=report.id,
                               count=report.count, sha256=digest)
    session.add(report)
    record(session, actor=admin, action="project.report", target_type=_TARGET, target_id=project.id,
           detail={"report": report.id, "count": report.count, "sha256": digest, "ledger_seq": report.ledger_seq}
           | ({"period": report.period} if report.period else {}))


def report_for(session: Session, *, project: DcProject, report_id: int) -> DcExemptionReport:
    report = session.get(DcExemptionReport, report_id)
    if report is None or report.project_id != project.id:
        raise NotFound(f"no report {report_id} of project {project.id}")
    return report


def reports_of(session: Session, project_id: int) -> list[DcExemptionReport]:
    return list(session.exec(select(DcExemptionReport).where(DcExemptionReport.project_id == project_id)
                             .order_by(DcExemptionReport.id)).all())


def is_rule_id(value: str) -> bool:
    return bool(_RULE_ID.match(value))


def today() -> dt.date:
    return dt.date.today()


def experts(session: Session) -> list[StaffAccount]:
    """The active staff accounts holding the `expert` role (a panel is chosen from them), by name."""
    rows = session.exec(select(StaffAccount).where(StaffAccount.active.is_(True))  # type: ignore[attr-defined]
                        .order_by(StaffAccount.display_name, StaffAccount.id)).all()
    return [s for s in rows if Role.EXPERT in (s.roles or [])]


def staff_names(session: Session, staff_ids: list[int]) -> dict[int, str]:
    """Display names of staff accounts (a panel shown on a page)."""
    if not staff_ids:
        return {}
    rows = session.exec(select(StaffAccount.id, StaffAccount.display_name)
                        .where(StaffAccount.id.in_(staff_ids))).all()  # type: ignore[union-attr]
    return {i: name for i, name in rows}
