"""Learner accounts: opened at an outlet by staff (or by bulk import), activated with a one-time code the outlet
hands over or at the outlet itself; online registrations wait for identity verification and open nothing
until then (docs/accounts.md). Staff search by ID number or account number (through the blind index); a learner
reads only their own account."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from node.privacy.erasure import still_personal
from node.audit.service import record, refusals_recorded
from node.auth.router import TokenPublic, check_unlocked, issue_token_for, sign_in_limit
from node.auth.service import (
    SignInAttempt,
    Throttle,
    account_key,
    find_learner_by_login,
    name_key,
    principal_of,
    record_failure,
)
from node.deps import CtxDep, Principal, SessionDep, public, require_roles
from node.errors import BadRequest, Conflict, NotFound
from node.learners.schemas import (
    ActivationCodePublic,
    ActivationRequest,
    LearnerCreate,
    LearnerPublic,
    LearnerRegister,
    RegistrationAccepted,
    RegistrationVerify,
)
from node.learners.service import (
    activation_letter,
    close_registrations,
    find_learner,
    find_learner_by_account,
    issue_activation_code,
    learner_public,
    live_activation_code,
    open_account,
    register_online,
    set_verified_password,
    use_activation_code,
    verify_registration,
)
from node.models import Learner
from node.roles import Role
from node.models.types import Int64
from node.security.idnumbers import normalise_id_number
from node.security.passwords import hash_password
from node.security.ratelimit import per_client_limit

router = APIRouter(prefix="/api/v1", tags=["learners"])

_STAFF_FRONT = (Role.OUTLET_STAFF, Role.BRANCH_REVIEWER, Role.CENTRE_REVIEWER)
StaffFront = Annotated[Principal, Depends(require_roles(*_STAFF_FRONT))]
LearnerOnly = Annotated[Principal, Depends(require_roles(Role.LEARNER))]
OutletDesk = Annotated[Principal, Depends(require_roles(Role.OUTLET_STAFF, Role.BRANCH_REVIEWER))]
LearnerId = Annotated[int, Path(ge=1, le=2**63 - 1)]
_registration_limit = per_client_limit("registration", lambda s: s.ratelimit.registration)


class ActivationResult(TokenPublic):
    account_no: str


@router.post("/learners", response_model=LearnerPublic, status_code=201)
def open_learner_account(
    body: LearnerCreate, response: Response, ctx: CtxDep, session: SessionDep, staff: StaffFront
) -> LearnerPublic:
    """Open an account at the outlet after checking the ID card (200 with the existing account if the person
    has one). With `password` (typed by the learner at the desk) the account is activated; an account that
    already has a password is reset with an activation code instead (409 account_already_active)."""
    learner, created = open_account(
        session, ctx, id_type=body.id_type, id_number=body.id_number, name=body.name, password=body.password
    )
    activated = False
    if body.password is not None:
        if not created and learner.password_hash is not None:
            raise Conflict("this account is already active; to reset its password, issue an activation code",
                           code="account_already_active")
        if created:
            close_registrations(session, id_blind=learner.id_blind)
        else:
            set_verified_password(session, learner=learner,
                                  password_hash=hash_password(body.password, gate=ctx.password_gate))
        activated = True
    if not created:
        response.status_code = 200
    elif staff.organisation_id is not None:
        learner.home_org_id = staff.organisation_id  # its branch takes the learner's applications
        session.add(learner)
    record(session, actor=staff, action="learner.open", target_type="learner", target_id=learner.id,
           detail={"created": created, "activated": activated})
    return learner_public(ctx, learner)


@router.post("/learners/register", response_model=RegistrationAccepted, status_code=202,
             dependencies=[Depends(public), Depends(_registration_limit)])
def register_online_route(body: LearnerRegister, request: Request, ctx: CtxDep,
                          session: SessionDep) -> RegistrationAccepted:
    """Register online. This opens no account and shows nothing: the answer is the same whether or not the
    person has an account (202 and a reference). The account opens, with this password, when staff at an
    outlet check the ID card against the reference; or the person uses an activation code from an outlet."""
    normalise_id_number(body.id_type, body.id_number)  # a malformed number is refused before any hashing
    password_hash = hash_password(body.password, gate=ctx.password_gate)
    registration = register_online(session, ctx, id_type=body.id_type, id_number=body.id_number, name=body.name,
                                   password_hash=password_hash)
    record(session, actor=None, action="learner.register", target_type="registration",
           detail={"client": ctx.rate_limits.client_of(request)})
    return RegistrationAccepted(
        reference=registration.reference, expires_at=registration.expires_at,
        message="注册已受理。请携带身份证件和本参考号到任一受理网点核验身份后开通账户；如网点已发给您激活码，"
                "也可用激活码开通。Registration received: your account opens once your identity is checked — "
                "bring your ID card and this reference to an outlet, or use an activation code from an outlet.")


@router.post("/learners/registrations/verify", response_model=LearnerPublic, status_code=201)
def verify_registration_route(body: RegistrationVerify, response: Response, ctx: CtxDep, session: SessionDep,
                              staff: OutletDesk) -> LearnerPublic:
    """At the outlet, with the person's ID card in hand: open (or take) their account with the password they
    chose when registering online. 201 if the account was opened now, 200 if it existed."""
    with refusals_recorded(session, actor=staff, action="learner.verify_registration"):
        learner, created = verify_registration(session, ctx, reference=body.reference, id_type=body.id_type,
                                               id_number=body.id_number)
    if not created:
        response.status_code = 200
    record(session, actor=staff, action="learner.verify_registration", target_type="learner",
           target_id=learner.id, detail={"created": created})
    return learner_public(ctx, learner)


@router.post("/learners/{learner_id}/activation-code", response_model=ActivationCodePublic, status_code=201)
def issue_code(learner_id: LearnerId, ctx: CtxDep, session: SessionDep, staff: OutletDesk) -> ActivationCodePublic:
    """A one-time code (and its printable letter) for an account opened by import or at the outlet, or to
    reset a forgotten password; hand it over after checking the ID card. Earlier unused codes stop working."""
    learner = session.get(Learner, learner_id)
    if learner is None:
        raise NotFound("no such learner")
    still_personal(learner)
    issued = issue_activation_code(session, learner=learner, secret=ctx.token_secret,
                                   ttl_days=ctx.settings.accounts.activation_code_ttl_days, issued_by=staff.name)
    record(session, actor=staff, action="learner.activation_code", target_type="learner", target_id=learner.id,
           detail={"purpose": issued.purpose, "expires_at": issued.expires_at.isoformat()})
    name = ctx.cipher.decrypt(learner.name_cipher, learner.key_id)
    return ActivationCodePublic(account_no=learner.account_no, code=issued.code, purpose=issued.purpose,
                                expires_at=issued.expires_at,
                                letter=activation_letter(ctx.settings, issued, name=name))


@router.post("/learners/activate", response_model=ActivationResult,
             dependencies=[Depends(public), Depends(sign_in_limit)])
def activate(body: ActivationRequest, request: Request, ctx: CtxDep, session: SessionDep) -> ActivationResult:
    """Activate an account (or reset its password) with the one-time code from the outlet: account number or
    ID number, the code, a new password. Every earlier token is revoked; the answer signs the learner in.
    Any mismatch (unknown account, wrong, used, replaced or expired code) is the same 400
    invalid_activation_code; repeated failures lock activation for that account for a while."""
    client = ctx.rate_limits.client_of(request)
    learner, canonical = find_learner_by_login(session, ctx, account_no=body.account_no, id_number=body.id_number,
                                               id_type=body.id_type)
    attempt = SignInAttempt(learner, account_key("activate", learner) if learner else
                            name_key(ctx, "activate", canonical), None)
    check_unlocked(session, ctx, attempt, action="learner.activate", client=client)
    row = live_activation_code(session, learner=learner, code=body.code, secret=ctx.token_secret) if learner else None
    if row is not None:
        session.commit()  # end the read transaction before hashing
        password_hash = hash_password(body.new_password, gate=ctx.password_gate)
        if use_activation_code(session, row=row, learner=learner, password_hash=password_hash):
            throttle = Throttle(session, ctx.settings.accounts)
            throttle.success(attempt.throttle_key)
            throttle.success(account_key("sign_in", learner))  # the holder proved who they are
            record(session, actor=principal_of(learner), action="learner.activate", target_type="learner",
                   target_id=learner.id, detail={"purpose": row.purpose, "client": client})
            return ActivationResult(**issue_token_for(ctx, learner).model_dump(), account_no=learner.account_no)
        session.rollback()  # spent by a concurrent request in the meantime
    record_failure(session, ctx, attempt, action="learner.activate", client=client, code="invalid_activation_code")
    session.commit()
    raise BadRequest("the activation code is not valid for this account (wrong, already used, replaced by a newer "
                     "one, or expired)", code="invalid_activation_code")


@router.get("/learners/search", response_model=LearnerPublic)
def search_learner(
    ctx: CtxDep,
    session: SessionDep,
    staff: Annotated[Principal, Depends(require_roles(*_STAFF_FRONT, Role.AUDITOR))],
    id_type: str = "resident_id",
    id_number: Annotated[str | None, Query(max_length=40)] = None,
    account_no: Annotated[str | None, Query(max_length=20)] = None,
) -> LearnerPublic:
    """Find one learner by ID number (with `id_type`) or by account number, not both; returns the
    learner with the ID number masked, 404 if none matches. Audited as `learner.search`, a miss too."""
    if bool(id_number) == bool(account_no):
        raise BadRequest("give either id_number or account_no", code="invalid_query")
    if id_number:
        learner = find_learner(session, ctx, id_type=id_type, id_number=id_number)
    else:
        learner = find_learner_by_account(session, account_no)
    record(session, actor=staff, action="learner.search", target_type="learner",
           target_id=learner.id if learner else None, outcome="ok" if learner else "not_found",
           detail={"by": "id_number" if id_number else "account_no"})
    if learner is None:
        raise NotFound("no learner matches")
    still_personal(learner)
    return learner_public(ctx, learner)


@router.get("/learners/{learner_id}", response_model=LearnerPublic)
def read_learner(learner_id: Int64, ctx: CtxDep, session: SessionDep, staff: StaffFront) -> LearnerPublic:
    """One learner's account (account number, masked ID number, name, pseudonym); 404 if unknown.
    Audited as `learner.read`."""
    learner = session.get(Learner, learner_id)
    if learner is None:
        raise NotFound("no such learner")
    still_personal(learner)
    record(session, actor=staff, action="learner.read", target_type="learner", target_id=learner_id)
    return learner_public(ctx, learner)


@router.get("/me", response_model=LearnerPublic)
def read_me(ctx: CtxDep, session: SessionDep, me: LearnerOnly) -> LearnerPublic:
    """The signed-in learner's own account: account number, masked ID number, name, pseudonym."""
    learner = session.get(Learner, me.id)
    if learner is None:
        raise NotFound("no such learner")
    return learner_public(ctx, learner)
