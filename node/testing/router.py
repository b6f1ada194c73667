"""`/api/v1/testing/*`: what a node must offer to be certified by the conformance suite (contract in
conformance-tests/README.md). Role federation_admin, every call audited, and every call refused with
`403 test_mode_off` unless `settings.federation.test_mode` is on (production mode refuses that setting).

- `POST /membership`   install a **test membership**: the held version plus the harness's members, signed by
                        this node alone and marked `"test": true` (it bypasses the threshold: test mode only);
- `POST /reset`        drop test memberships and every trace of the test peers (DID cache, inbox, outbox,
                        streams), so runs start from the same state;
- `POST /fixtures/achievement`  a synthetic learner's deposited achievement (ledger event included), so the
                        suite has a credential and a growing log to check, and that learner's sign-in (test
                        data only) so the suite can act as the learner (consent, transfer);
- `POST /keys/rotate`   rotate the node's key now (operator CLI + restart, in one step), so rotation is visible;
- `POST /outbox`, `POST /outbox/flush`, `GET /outbox`, `GET /inbox`: make the node send a message to a test peer,
                        run the delivery job now (optionally with the backoff clock advanced), observe both sides.

The message type `conformance.ping` (refused outside test mode) has one observable effect per processed
message: an audit entry `testing.ping` naming the message id; `GET /inbox` counts them.
"""

from __future__ import annotations

import datetime as dt
import secrets
from decimal import Decimal
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlmodel import Session, select

from federation.inbox import register_handler
from federation.membership import MEMBERSHIP_TYPE, Member, held_membership, membership_hash, sign_membership
from federation.outbox import enqueue, flush_outbox
from node.audit.service import record
from node.context import NodeContext
from node.deps import CtxDep, Principal, SessionDep, require_roles
from node.errors import BadRequest, Forbidden
from node.ledger.service import EventSpec, append_events
from node.models import (
    Achievement,
    AuditEntry,
    InboxMessage,
    MembershipVersion,
    OutboxMessage,
    PeerDidDocument,
    PeerStream,
    utcnow,
)
from node.roles import Role
from node.models.types import Int64

__all__ = ["PING_TYPE", "router"]

PING_TYPE = "conformance.ping"


def _test_admin(ctx: CtxDep, session: SessionDep,
                principal: Annotated[Principal, Depends(require_roles(Role.FEDERATION_ADMIN))]) -> Principal:
    """A federation admin, on a node in test mode; the refusal is audited like any denied call."""
    if not ctx.settings.federation.test_mode:
        session.rollback()
        record(session, actor=principal, action="testing.refused", outcome="denied",
               detail={"reason": "test_mode_off"})
        session.commit()
        raise Forbidden("this node does not run in test mode (federation.test_mode)", code="test_mode_off")
    return principal


Admin = Annotated[Principal, Depends(_test_admin)]
router = APIRouter(prefix="/api/v1/testing", tags=["conformance testing"])


# -- test membership --------------------------------------------------------------------------------


class TestMembers(BaseModel):
    members: list[Member] = Field(min_length=1, max_length=8)


def _is_test(row: MembershipVersion) -> bool:
    return bool(row.document.get("test"))


@router.post("/membership", status_code=201)
def install_test_membership(body: TestMembers, ctx: CtxDep, session: SessionDep, admin: Admin) -> dict:
    """Hold a new version = the held members (or this node alone) + the test members, signed by this node."""
    held = held_membership(session)
    own = Member(node_id=ctx.node_id, did=ctx.identity.did, base_url=ctx.settings.base_url,
                 name_zh=ctx.settings.region.name_zh, name_en=ctx.settings.region.name_en, roles=["region"])
    base = [Member.model_validate(m) for m in held.document["members"]] if held is not None else [own]
    if all(m.did != own.did for m in base):
        base.append(own)
    clash = {m.node_id for m in base} & {m.node_id for m in body.members} | (
        {m.did for m in base} & {m.did for m in body.members})
    if clash:
        raise BadRequest(f"test members clash with members: {sorted(clash)}", code="invalid_request")
    members = [m.model_dump(mode="json") for m in [*base, *body.members]]
    document = {"type": MEMBERSHIP_TYPE, "federation": held.document.get("federation", "") if held else "",
                "version": held.version + 1 if held else 1, "previous": held.hash if held else None,
                "threshold": len(members) // 2 + 1, "members": members, "test": True}
    document = sign_membership(document, ctx.identity)
    row = MembershipVersion(version=document["version"], hash=membership_hash(document), document=document,
                            accepted_at=utcnow())
    session.add(row)
    session.flush()
    record(session, actor=admin, action="testing.membership.install", target_type="membership",
           target_id=row.hash, detail={"version": row.version, "test_members": [m.node_id for m in body.members]})
    return {"version": row.version, "hash": row.hash, "document": document}


class ResetRequest(BaseModel):
    node_ids: list[str] = Field(default_factory=list, max_length=16)


@router.post("/reset")
def reset(body: ResetRequest, ctx: CtxDep, session: SessionDep, admin: Admin) -> dict:
    """Forget the test membership versions and the test peers' traces (the named ones, else every member
    of a test version that is not a member of the last real version)."""
    test_rows = [r for r in session.exec(select(MembershipVersion)).all() if _is_test(r)]
    real = [r for r in session.exec(select(MembershipVersion).order_by(MembershipVersion.version)).all()
            if not _is_test(r)]
    kept = {m["node_id"] for m in real[-1].document["members"]} if real else {ctx.node_id}
    peers = set(body.node_ids) or {m["node_id"] for r in test_rows for m in r.document["members"]} - kept
    peers.discard(ctx.node_id)
    counts = {"membership_versions": len(test_rows)}
    for row in test_rows:
        session.delete(row)
    for name, model, column in (("did_documents", PeerDidDocument, PeerDidDocument.node_id),
                                ("inbox", InboxMessage, InboxMessage.origin),
                                ("outbox", OutboxMessage, OutboxMessage.peer),
                                ("streams", PeerStream, PeerStream.peer)):
        counts[name] = session.execute(sa.delete(model).where(column.in_(sorted(peers)))).rowcount or 0
    session.flush()
    record(session, actor=admin, action="testing.reset", detail={"peers": sorted(peers), "removed": counts})
    return {"peers": sorted(peers), "removed": counts}


# -- fixtures -----------------------------------------------------------------------------------------


class AchievementFixture(BaseModel):
    title: str = Field(default="高等数学（一）", min_length=1, max_length=200)
    credits: Decimal = Field(default=Decimal(4), ge=0, le=1000)
    hours: Decimal = Field(default=Decimal(64), ge=0, le=100000)
    code: str = Field(default="CONF101", min_length=1, max_length=64)


def _synthetic_id_number() -> str:
    """A well-formed, random resident ID number (a synthetic test learner; it never leaves the node)."""
    from node.security.idnumbers import gb11643_check_char

    born = dt.date(1960, 1, 1) + dt.timedelta(days=secrets.randbelow(16000))  # ~16 million numbers, not 1000
    first = "310101" + born.strftime("%Y%m%d") + f"{secrets.randbelow(1000):03d}"
    return first + gb11643_check_char(first)


@router.post("/fixtures/achievement", status_code=201)
def achievement_fixture(body: AchievementFixture, ctx: CtxDep, session: SessionDep, admin: Admin) -> dict:
    """Deposit a synthetic achievement for a new synthetic learner, appending
    `achievement.deposited` to the ledger; returns its id, ledger seq and the learner's sign-in. Audited."""
    from node.learners.service import open_account

    password = secrets.token_urlsafe(16)
    for _ in range(8):  # a new learner each time: an existing one keeps its own password
        learner, created = open_account(session, ctx, id_type="resident_id", id_number=_synthetic_id_number(),
                                        name="测试学员", password=password)
        if created:
            break
    else:  # pragma: no cover - 8 collisions in ~16 million numbers
        raise BadRequest("could not draw an unused synthetic ID number", code="invalid_request")
    achievement = Achievement(learner_id=learner.id, type="degree_course", issuer_code="CONFTEST",
                              issuer_name="一致性测试机构", code=body.code, title=body.title, credits=body.credits,
                              hours=body.hours, score_text="85", score_value=Decimal(85),
                              earned_on=dt.date(2024, 6, 30), term="202406", source="individual")
    session.add(achievement)
    session.flush()
    seqs = append_events(session, [EventSpec(
        kind="achievement.deposited", learner_id=learner.id, achievement_id=achievement.id,
        pseudonym=learner.pseudonym,
        data={"achievement": achievement.id, "title": body.title, "credits": str(body.credits)})])
    seq = seqs[0] if seqs else None
    record(session, actor=admin, action="testing.fixture", target_type="achievement", target_id=achievement.id)
    # the synthetic learner's sign-in, so the suite can act as the learner (consent, transfer)
    return {"achievement_id": achievement.id, "ledger_seq": seq,
            "learner": {"account_no": learner.account_no, "password": password, "pseudonym": learner.pseudonym}}


@router.post("/fixtures/achievement/{achievement_id}/revoke")
def revoke_fixture(achievement_id: Int64, ctx: CtxDep, session: SessionDep, admin: Admin) -> dict:
    """Revoke a deposited achievement at once — what the reviewed revocation (two centre reviewers) does when
    approved, including telling the regions it was released to — so the suite, one account, can watch it."""
    from node.credentials.status import revoke_achievement
    from node.errors import NotFound

    achievement = session.get(Achievement, achievement_id, with_for_update=True)
    if achievement is None:
        raise NotFound("no such achievement")
    revoke_achievement(session, ctx, achievement, cause={"testing": True},
                       because="revoked by the conformance suite (test mode)")
    record(session, actor=admin, action="testing.revoke", target_type="achievement", target_id=achievement_id)
    return {"achievement_id": achievement_id, "status": achievement.status,
            "status_index": achievement.status_index}


# -- keys ---------------------------------------------------------------------------------------------


class RotateRequest(BaseModel):
    keep_old_days: Int64 = Field(default=30, ge=1, le=365)


@router.post("/keys/rotate")
def rotate_keys(body: RotateRequest, ctx: CtxDep, session: SessionDep, admin: Admin) -> dict:
    """What `creditnode keys rotate` + a restart do, at once (so the suite can watch a rotation): a new
    current key, the old one published until it expires. Only this worker reloads its key ring."""
    from node.identity.keyring import rotate_keyring

    old = ctx.identity.key_id
    ring = rotate_keyring(ctx.settings, keep_old_days=body.keep_old_days)
    ctx.reload_identity()
    record(session, actor=admin, action="testing.keys.rotate", target_type="key", target_id=ring.current,
           detail={"previous": old, "keep_old_days": body.keep_old_days})
    return {"previous": old, "current": ctx.identity.key_id}


# -- delivery -----------------------------------------------------------------------------------------


class OutgoingMessage(BaseModel):
    peer: str = Field(min_length=1, max_length=64)
    type: str = Field(default=PING_TYPE, min_length=1, max_length=60)
    body: dict = Field(default_factory=dict)


@router.post("/outbox", status_code=201)
def send_message(body: OutgoingMessage, ctx: CtxDep, session: SessionDep, admin: Admin) -> dict:
    """Queue a message (default `conformance.ping`) to `peer` in this node's outbox; returns its id
    and sequence number. Audited."""
    row = enqueue(session, body.peer, body.type, body.body)
    record(session, actor=admin, action="testing.outbox.enqueue", target_type="outbox_message",
           target_id=row.message_id, detail={"peer": body.peer, "seq": row.seq})
    return {"message_id": row.message_id, "peer": row.peer, "seq": row.seq}


class FlushRequest(BaseModel):
    advance_seconds: Int64 = Field(default=0, ge=0, le=7 * 24 * 3600)
    # an explicit clock (e.g. the `clock` of an earlier flush + n s): a timeline that slow requests cannot skew
    at: dt.datetime | None = None


@router.post("/outbox/flush")
def flush(body: FlushRequest, ctx: CtxDep, session: SessionDep, admin: Admin) -> dict:
    """Run the delivery job now, its clock at `at` (default: now) + `advance_seconds`, so backoff shows
    without waiting. The answer gives the job's report and the `clock` it used."""
    base = body.at.astimezone(dt.UTC) if body.at and body.at.tzinfo else (
        body.at.replace(tzinfo=dt.UTC) if body.at else dt.datetime.now(dt.UTC))
    now = base + dt.timedelta(seconds=body.advance_seconds)
    record(session, actor=admin, action="testing.outbox.flush", detail={"clock": now.isoformat()})
    session.commit()  # the job works in its own transactions
    return {**flush_outbox(ctx, now=now).to_dict(), "clock": now.isoformat()}


@router.get("/outbox")
def outbox(session: SessionDep, admin: Admin, peer: Annotated[str, Query(max_length=64)]) -> list[dict]:
    """The outbox's messages to `peer`, by sequence: type, delivery state, attempts, last error and
    next attempt."""
    rows = session.exec(select(OutboxMessage).where(OutboxMessage.peer == peer).order_by(OutboxMessage.seq)).all()
    return [{"message_id": r.message_id, "seq": r.seq, "type": r.type, "state": r.state, "attempts": r.attempts,
             "last_error": r.last_error, "next_attempt_at": r.next_attempt_at.isoformat()} for r in rows]


@router.get("/inbox")
def inbox(session: SessionDep, admin: Admin, origin: Annotated[str, Query(max_length=64)]) -> list[dict]:
    """The inbox's messages from `origin`, by sequence, with the status code answered and `effects`: how
    many times a ping's processing took effect (a duplicate would show as more than one)."""
    rows = session.exec(select(InboxMessage).where(InboxMessage.origin == origin).order_by(InboxMessage.seq)).all()
    effects: dict[str, int] = {}
    for target in session.exec(select(AuditEntry.target_id).where(AuditEntry.action == "testing.ping")).all():
        effects[str(target)] = effects.get(str(target), 0) + 1
    return [{"message_id": r.message_id, "seq": r.seq, "type": r.type, "status_code": r.status_code,
             "effects": effects.get(r.message_id, 0)} for r in rows]


def _ping(session: Session, ctx: NodeContext, peer: Any, message: Any) -> dict:
    """`conformance.ping`: one audit entry per processed message, so a duplicate's extra effect would show."""
    if not ctx.settings.federation.test_mode:
        raise Forbidden("this node does not run in test mode (federation.test_mode)", code="test_mode_off")
    record(session, actor=None, action="testing.ping", target_type="inbox_message", target_id=message.id,
           detail={"origin": peer.node_id, "seq": message.seq})
    return {"pong": message.body.get("token"), "seq": message.seq}


register_handler(PING_TYPE, _ping)
