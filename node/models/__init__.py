"""Every table of the node, in one package so that domains never import each other to reach a table.

Layout decisions are written down in docs/storage.md.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from node.models.types import BigId, ExactDecimal, LogString, UtcDateTime

__all__ = [
    "Achievement",
    "ApiKey",
    "ApplicationEvidence",
    "AuditEntry",
    "Checkpoint",
    "CodeListEntry",
    "Counter",
    "DepositApplication",
    "EvidenceFile",
    "ImportJob",
    "ImportRowError",
    "Learner",
    "LedgerEvent",
    "LedgerHead",
    "Organisation",
    "RevocationRequest",
    "StaffAccount",
    "metadata",
    "utcnow",
]

SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = SQLModel.metadata


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _ts(**kw: Any) -> Any:
    return Field(default_factory=utcnow, sa_type=UtcDateTime(), **kw)


def _id() -> Any:
    return Field(default=None, sa_column=sa.Column(BigId, primary_key=True, autoincrement=True))


def _token_version() -> Any:
    """Bearer tokens carry the account's version; bumping it revokes them all (node.auth.service)."""
    return Field(default=0, sa_column_kwargs={"server_default": sa.text("0")})


# -- organisation and people --------------------------------------------------------------------


class Organisation(SQLModel, table=True):
    """Centre, district branch, university outlet or institution (university, self-study exam
    authority, skills appraisal centre, training body)."""

    __tablename__ = "organisation"
    id: int | None = _id()
    code: str = Field(max_length=32, unique=True)
    name: str = Field(max_length=200)
    kind: str = Field(max_length=20)  # centre | branch | outlet | institution
    institution_type: str | None = Field(default=None, max_length=30)
    parent_id: int | None = Field(default=None, foreign_key="organisation.id", sa_type=BigId)
    # a deactivated organisation's staff and API keys cannot act; it takes no new applications (docs/organisations.md)
    active: bool = Field(default=True, sa_column_kwargs={"server_default": sa.true()})
    created_at: dt.datetime = _ts()


class StaffAccount(SQLModel, table=True):
    __tablename__ = "staff_account"
    id: int | None = _id()
    username: str = Field(max_length=64, unique=True)
    password_hash: str = Field(max_length=255)
    display_name: str = Field(max_length=100)
    roles: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    organisation_id: int | None = Field(default=None, foreign_key="organisation.id", sa_type=BigId)
    active: bool = True
    created_at: dt.datetime = _ts()
    token_version: int = _token_version()


class ApiKey(SQLModel, table=True):
    """An institution system's key; only its SHA-256 is stored (keys are 256-bit random)."""

    __tablename__ = "api_key"
    id: int | None = _id()
    prefix: str = Field(max_length=16, unique=True)
    key_hash: str = Field(max_length=64)
    organisation_id: int = Field(foreign_key="organisation.id", sa_type=BigId)
    label: str = Field(default="", max_length=100)
    roles: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    created_by: int | None = Field(default=None, foreign_key="staff_account.id", sa_type=BigId)
    created_at: dt.datetime = _ts()
    revoked_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime())


class Learner(SQLModel, table=True):
    """A learner's account. The ID number is stored only encrypted (`id_cipher`, AES-256-GCM with the key
    named by `key_id`) plus a keyed blind index for lookup; `id_masked` is what responses show."""

    __tablename__ = "learner"
    id: int | None = _id()
    account_no: str = Field(max_length=20, unique=True)
    id_type: str = Field(max_length=20)
    id_blind: str = Field(max_length=64, unique=True)
    id_cipher: bytes = Field(sa_type=sa.LargeBinary)
    id_masked: str = Field(max_length=40)
    name_cipher: bytes = Field(sa_type=sa.LargeBinary)
    key_id: str = Field(max_length=16)
    pseudonym: str = Field(max_length=64, unique=True)  # subject id in credentials; never the ID number
    leaf_salt: bytes = Field(sa_type=sa.LargeBinary)  # the learner's hash in v1 ledger leaves (kept: opens them)
    password_hash: str | None = Field(default=None, max_length=255)
    # the centre, branch or outlet whose staff opened the account: its branch takes the learner's applications
    home_org_id: int | None = Field(default=None, foreign_key="organisation.id", sa_type=BigId)
    created_at: dt.datetime = _ts()
    token_version: int = _token_version()
    # set when the centre erased the person (node.engage.erasure): the personal fields are shredded
    erased_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime())


# -- outcomes -----------------------------------------------------------------------------------


class Achievement(SQLModel, table=True):
    """One learning outcome in a learner's archive: the current state, projected from ledger events."""

    __tablename__ = "achievement"
    __table_args__ = (sa.Index("ix_achievement_learner_id_type", "learner_id", "type"),)
    id: int | None = _id()
    learner_id: int = Field(foreign_key="learner.id", sa_type=BigId)
    type: str = Field(max_length=30)
    issuer_org_id: int | None = Field(default=None, foreign_key="organisation.id", sa_type=BigId)
    issuer_code: str = Field(max_length=32)
    issuer_name: str = Field(default="", max_length=200)
    code: str = Field(default="", max_length=64)  # catalogue code: the course's, or the certificate's kind
    title: str = Field(max_length=200)
    programme_name: str | None = Field(default=None, max_length=200)
    certificate_no: str | None = Field(default=None, max_length=64)  # a certificate's own serial number
    credits: Decimal | None = Field(default=None, sa_type=ExactDecimal)
    hours: Decimal | None = Field(default=None, sa_type=ExactDecimal)
    score_text: str | None = Field(default=None, max_length=20)
    score_value: Decimal | None = Field(default=None, sa_type=ExactDecimal)
    level: str | None = Field(default=None, max_length=20)
    earned_on: dt.date | None = None
    term: str | None = Field(default=None, max_length=6)  # YYYYMM as in the bulk template
    expires_on: dt.date | None = None
    student_no: str | None = Field(default=None, max_length=40)
    education_level_code: str | None = Field(default=None, max_length=8)
    education_type_code: str | None = Field(default=None, max_length=8)
    graduation_year: str | None = Field(default=None, max_length=8)
    graduation_status: str | None = Field(default=None, max_length=8)
    graduation_season: str | None = Field(default=None, max_length=8)
    remark: str | None = Field(default=None, max_length=500)
    source: str = Field(max_length=20)  # bulk | individual | conversion | transfer
    status: str = Field(default="deposited", max_length=20)  # deposited | revoked
    # learner + institution + course + term: re-imports keep one row with the best score
    dedupe_key: str | None = Field(default=None, max_length=64, unique=True)
    import_job_id: str | None = Field(default=None, max_length=36, index=True)
    status_index: int | None = Field(default=None, sa_type=sa.BigInteger, unique=True)
    created_at: dt.datetime = _ts()


class EvidenceFile(SQLModel, table=True):
    """An evidence file, content-addressed by SHA-256 (stored once however often it is uploaded)."""

    __tablename__ = "evidence_file"
    sha256: str = Field(max_length=64, primary_key=True)
    size: int
    content_type: str = Field(max_length=100)
    original_name: str = Field(default="", max_length=255)
    created_at: dt.datetime = _ts()


class DepositApplication(SQLModel, table=True):
    """A learner's individual deposit (个人申请存入), reviewed by a branch reviewer then a centre reviewer."""

    __tablename__ = "deposit_application"
    __table_args__ = (
        sa.Index("ix_deposit_application_branch_id_id", "branch_id", "id"),
        sa.Index("ix_deposit_application_state_id", "state", "id"),  # a queue by state, in id order (keyset)
    )
    id: int | None = _id()
    learner_id: int = Field(foreign_key="learner.id", sa_type=BigId, index=True)
    state: str = Field(max_length=30)
    claim: dict = Field(default_factory=dict, sa_type=sa.JSON)  # the proposed achievement
    submitted_by_staff_id: int | None = Field(default=None, foreign_key="staff_account.id", sa_type=BigId)
    # the branch whose reviewers give the first review; None: the centre's own queue (docs/review-workflow.md)
    branch_id: int | None = Field(default=None, foreign_key="organisation.id", sa_type=BigId)
    first_reviewer_id: int | None = Field(default=None, foreign_key="staff_account.id", sa_type=BigId)
    first_decision: str | None = Field(default=None, max_length=20)
    first_reason: str | None = Field(default=None, max_length=1000)
    second_reviewer_id: int | None = Field(default=None, foreign_key="staff_account.id", sa_type=BigId)
    second_decision: str | None = Field(default=None, max_length=20)
    second_reason: str | None = Field(default=None, max_length=1000)
    appeal_reason: str | None = Field(default=None, max_length=1000)
    appealed_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime())
    # the appeal goes back to the stage that rejected; its decision is kept apart from the original one
    appeal_stage: str | None = Field(default=None, max_length=10)  # first | second
    appeal_reviewer_id: int | None = Field(default=None, foreign_key="staff_account.id", sa_type=BigId)
    appeal_decision: str | None = Field(default=None, max_length=20)
    appeal_decision_reason: str | None = Field(default=None, max_length=1000)
    submitted_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime())
    achievement_id: int | None = Field(default=None, foreign_key="achievement.id", sa_type=BigId, index=True)
    version: int = 1
    created_at: dt.datetime = _ts()
    updated_at: dt.datetime = _ts()


class ApplicationEvidence(SQLModel, table=True):
    __tablename__ = "application_evidence"
    application_id: int = Field(foreign_key="deposit_application.id", primary_key=True, sa_type=BigId)
    sha256: str = Field(foreign_key="evidence_file.sha256", primary_key=True, max_length=64)


# -- ledger -------------------------------------------------------------------------------------


class LedgerEvent(SQLModel, table=True):
    """An append-only ledger event. `leaf` is the canonical JSON of the event as published (it carries the
    previous event's hash), `hash` is its RFC 9162 leaf hash, so the chain of `prev` hashes and the Merkle log
    are the same data. An event about a person publishes only a salted commitment (leaf version 2): `salt` and
    `opening` (the committed canonical JSON: the learner's pseudonym and the event's data) stay private here
    and open it. Version-1 rows have neither. See docs/ledger.md."""

    __tablename__ = "ledger_event"
    seq: int = Field(sa_column=sa.Column(BigId, primary_key=True, autoincrement=False))
    kind: str = Field(max_length=40)
    learner_id: int | None = Field(default=None, foreign_key="learner.id", sa_type=BigId, index=True)
    achievement_id: int | None = Field(default=None, sa_type=sa.BigInteger, index=True)
    leaf: str = Field(sa_type=sa.Text)
    hash: bytes = Field(sa_type=sa.LargeBinary(32))
    salt: bytes | None = Field(default=None, sa_type=sa.LargeBinary(16))
    opening: str | None = Field(default=None, sa_type=sa.Text)
    created_at: dt.datetime = _ts()


class LedgerHead(SQLModel, table=True):
    """One row: the ledger's tip. Appenders lock it, so events get gapless sequence numbers and a chain."""

    __tablename__ = "ledger_head"
    id: int = Field(default=1, primary_key=True)
    size: int = Field(default=0, sa_type=sa.BigInteger)
    last_hash: bytes = Field(default=b"\x00" * 32, sa_type=sa.LargeBinary(32))
    frontier: list = Field(default_factory=list, sa_type=sa.JSON)  # Merkle compact range (hex hashes)


# -- audit --------------------------------------------------------------------------------------


class AuditEntry(SQLModel, table=True):
    """Every staff, admin and institution action: who, role, action, target, outcome, when."""

    __tablename__ = "audit_log"
    # the log's filters, each with the id so a page is read in id order from the index (keyset paging,
    # docs/scaling.md): by action, by target, by actor (id or name)
    __table_args__ = (
        sa.Index("ix_audit_log_action_id", "action", "id"),
        sa.Index("ix_audit_log_target_type_target_id_id", "target_type", "target_id", "id"),
        sa.Index("ix_audit_log_actor_id_id", "actor_id", "id"),
        sa.Index("ix_audit_log_actor_name_id", "actor_name", "id"),
    )
    id: int | None = _id()
    at: dt.datetime = _ts(index=True)
    actor_kind: str = Field(max_length=20)  # staff | learner | api_key | system | peer | anonymous
    # log-like columns: clipped and cleaned when written (node.models.types.LogString), so recording never fails
    actor_id: str | None = Field(default=None, sa_type=LogString(64))
    actor_name: str | None = Field(default=None, sa_type=LogString(100))
    role: str | None = Field(default=None, sa_type=sa.Text)  # every role the actor holds, comma-joined
    action: str = Field(sa_type=LogString(60))
    target_type: str | None = Field(default=None, sa_type=LogString(40))
    target_id: str | None = Field(default=None, sa_type=LogString(64))
    outcome: str = Field(max_length=20)  # ok | denied | failed
    detail: dict = Field(default_factory=dict, sa_type=sa.JSON)


# -- bulk import --------------------------------------------------------------------------------


class ImportJob(SQLModel, table=True):
    __tablename__ = "import_job"
    id: str = Field(primary_key=True, max_length=36)
    organisation_id: int = Field(foreign_key="organisation.id", sa_type=BigId)
    filename: str = Field(max_length=255)
    file_sha256: str = Field(max_length=64, index=True)
    format: str = Field(max_length=20)  # shanghai-csv | shanghai-xlsx | jsonl
    encoding: str | None = Field(default=None, max_length=20)
    stored_path: str = Field(max_length=500)
    status: str = Field(default="queued", max_length=20)  # queued | running | done | failed
    rows_read: int = 0
    deposited: int = 0
    updated: int = 0
    duplicates: int = 0
    rejected: int = 0
    rows_committed: int = 0  # resume point: rows fully processed in committed batches
    total_rows: int | None = None  # counted at upload (lines, or the sheet's dimension); rows_read once done
    learners_created: int = 0
    error: str | None = Field(default=None, sa_type=LogString(1000))
    created_by: str | None = Field(default=None, max_length=64)
    created_at: dt.datetime = _ts()
    started_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime())
    finished_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime())
    # set when claimed and at every committed batch: a running job whose heartbeat is old was abandoned
    heartbeat_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime())


class ImportRowError(SQLModel, table=True):
    __tablename__ = "import_row_error"
    id: int | None = _id()
    job_id: str = Field(foreign_key="import_job.id", max_length=36, index=True)
    row_no: int
    column: str = Field(sa_type=LogString(40))
    value: str = Field(sa_type=LogString(200))  # ID numbers appear masked only
    reason: str = Field(sa_type=LogString(300))


# -- code lists ---------------------------------------------------------------------------------


class CodeListEntry(SQLModel, table=True):
    """Versioned code lists (education level, education type, ...): data, not constants."""

    __tablename__ = "code_list_entry"
    __table_args__ = (sa.UniqueConstraint("list_name", "version", "code"),)
    id: int | None = _id()
    list_name: str = Field(max_length=40)
    version: str = Field(max_length=20)
    code: str = Field(max_length=20)
    label: str = Field(max_length=100)
    valid_from: dt.date | None = None
    valid_to: dt.date | None = None


class Counter(SQLModel, table=True):
    """Named counters (account numbers): a block of values is reserved with one UPDATE."""

    __tablename__ = "counter"
    name: str = Field(primary_key=True, max_length=40)
    value: int = Field(default=0, sa_type=sa.BigInteger)


# -- proofs: checkpoints and revocation ---------------------------------------------------------


class Checkpoint(SQLModel, table=True):
    """A signed checkpoint (C2SP signed note) of the ledger's Merkle log at `size`."""

    __tablename__ = "checkpoint"
    id: int | None = _id()
    size: int = Field(sa_type=sa.BigInteger, unique=True)
    root_hash: bytes = Field(sa_type=sa.LargeBinary(32))
    note: str = Field(sa_type=sa.Text)
    key_id: str = Field(max_length=32)
    created_at: dt.datetime = _ts()


class RevocationRequest(SQLModel, table=True):
    """Revoking an achievement is reviewed: one staff member requests, a different one approves."""

    __tablename__ = "revocation_request"
    id: int | None = _id()
    achievement_id: int = Field(foreign_key="achievement.id", sa_type=BigId, index=True)
    reason: str = Field(max_length=1000)
    state: str = Field(default="requested", max_length=20)  # requested | approved | rejected
    requested_by: int = Field(foreign_key="staff_account.id", sa_type=BigId)
    decided_by: int | None = Field(default=None, foreign_key="staff_account.id", sa_type=BigId)
    decision_reason: str | None = Field(default=None, max_length=1000)
    created_at: dt.datetime = _ts()
    decided_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime())


# -- federation: membership, peer keys, replay cache, reliable delivery ---------------------------


class MembershipVersion(SQLModel, table=True):
    """A valid, installed version of the federation's signed member list (docs/federation.md §2).
    The newest row is the membership this node holds."""

    __tablename__ = "membership_version"
    version: int = Field(sa_column=sa.Column(sa.BigInteger, primary_key=True, autoincrement=False))
    hash: str = Field(max_length=64, unique=True)
    document: dict = Field(sa_type=sa.JSON)
    accepted_at: dt.datetime = _ts()


class MembershipProposal(SQLModel, table=True):
    """A proposed next membership version collecting member proofs (keyed by its hash without proofs)."""

    __tablename__ = "membership_proposal"
    hash: str = Field(max_length=64, primary_key=True)
    version: int = Field(sa_type=sa.BigInteger)
    document: dict = Field(sa_type=sa.JSON)
    created_at: dt.datetime = _ts()
    updated_at: dt.datetime = _ts()


class PeerDidDocument(SQLModel, table=True):
    """A member's DID document as last fetched from `{base_url}/.well-known/did.json`."""

    __tablename__ = "peer_did_document"
    did: str = Field(max_length=255, primary_key=True)
    node_id: str = Field(max_length=64, index=True)
    document: dict = Field(sa_type=sa.JSON)
    fetched_at: dt.datetime = _ts()


class SeenNonce(SQLModel, table=True):
    """Replay cache of signed peer requests: (key id, nonce) is accepted once; purged after expiry."""

    __tablename__ = "seen_nonce"
    __table_args__ = (sa.UniqueConstraint("key_id", "nonce"),)
    id: int | None = _id()
    key_id: str = Field(max_length=255)
    nonce: str = Field(max_length=128)
    expires_at: dt.datetime = Field(sa_type=UtcDateTime(), index=True)


class RateLimitCounter(SQLModel, table=True):
    """Per-client rate-limit counters shared by every worker process (`ratelimit.storage_uri = "database"`,
    node.security.ratelimit): one row per limit key and window; `expires_at` in seconds since the epoch."""

    __tablename__ = "rate_limit_counter"
    key: str = Field(primary_key=True, max_length=255)
    count: int
    expires_at: float = Field(sa_type=sa.Float(), index=True)


class OutboxMessage(SQLModel, table=True):
    """A one-way message to a peer, kept until delivered (or dead-lettered); `seq` counts per peer."""

    __tablename__ = "outbox_message"
    __table_args__ = (
        sa.UniqueConstraint("peer", "seq"),
        sa.Index("ix_outbox_message_state_next_attempt_at", "state", "next_attempt_at"),
    )
    id: int | None = _id()
    peer: str = Field(max_length=64)
    seq: int = Field(sa_type=sa.BigInteger)
    message_id: str = Field(max_length=64, unique=True)
    type: str = Field(max_length=60)
    body: dict = Field(default_factory=dict, sa_type=sa.JSON)
    state: str = Field(default="pending", max_length=10)  # pending | delivered | dead | discarded
    attempts: int = 0
    next_attempt_at: dt.datetime = _ts()  # while claimed: the end of the claim's lease
    claimed_by: str | None = Field(default=None, max_length=64, index=True)  # outbox_worker.id while claimed
    last_error: str | None = Field(default=None, sa_type=LogString(500))
    response: dict | None = Field(default=None, sa_type=sa.JSON)  # the signed receipt
    created_at: dt.datetime = _ts()
    delivered_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime())


class InboxMessage(SQLModel, table=True):
    """A message received from a peer, with the first response given (returned again for duplicates)."""

    __tablename__ = "inbox_message"
    __table_args__ = (sa.UniqueConstraint("origin", "message_id"),)
    id: int | None = _id()
    origin: str = Field(max_length=64)
    message_id: str = Field(max_length=64)
    seq: int = Field(sa_type=sa.BigInteger)
    type: str = Field(max_length=60)
    body: dict = Field(default_factory=dict, sa_type=sa.JSON)
    response: dict = Field(default_factory=dict, sa_type=sa.JSON)
    status_code: int = 200
    received_at: dt.datetime = _ts()


class OutboxWorker(SQLModel, table=True):
    """A process that flushes the outbox, with its heartbeat: rows it claimed are taken back at once when it is
    known to be gone (same host and its pid not running) or its heartbeat is stale (docs/federation.md §4)."""

    __tablename__ = "outbox_worker"
    id: str = Field(max_length=64, primary_key=True)
    host: str = Field(max_length=255)  # host name + boot id + pid namespace: where `pid` names a process
    pid: int
    started_at: dt.datetime = _ts()
    heartbeat_at: dt.datetime = _ts()


class PeerStream(SQLModel, table=True):
    """Per-peer sequence counters: the next seq to send to the peer and the next one expected from it."""

    __tablename__ = "peer_stream"
    peer: str = Field(max_length=64, primary_key=True)
    next_out_seq: int = Field(default=1, sa_type=sa.BigInteger)
    next_in_seq: int = Field(default=1, sa_type=sa.BigInteger)


__all__ += [
    "InboxMessage",
    "MembershipProposal",
    "MembershipVersion",
    "OutboxMessage",
    "OutboxWorker",
    "PeerDidDocument",
    "PeerStream",
    "SeenNonce",
]

# Each area's tables live in a module of its own, imported here so that `node.models` holds the whole schema.
from node.models.standards import *  # noqa: E402, F403
from node.models.agreements import *  # noqa: E402, F403
from node.models.transfers import *  # noqa: E402, F403
from node.models.witness import *  # noqa: E402, F403
from node.models.credentials import *  # noqa: E402, F403
from node.models.accounts import *  # noqa: E402, F403
from node.models.projects import *  # noqa: E402, F403
from node.models.stats import *  # noqa: E402, F403
from node.models.engage import *  # noqa: E402, F403
