"""Learner accounts: opening (idempotent per person), lookup by blind index, masked public views."""

from __future__ import annotations

import os
import uuid

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from node.context import NodeContext
from node.counters import reserve
from node.learners.schemas import LearnerPublic
from node.ledger.service import EventSpec, append_events
from node.models import Learner
from node.security.idnumbers import mask_id_number, normalise_id_number
from node.security.passwords import hash_password

__all__ = [
    "find_learner",
    "learner_public",
    "new_learner_row",
    "open_account",
    "reserve_account_numbers",
]


def reserve_account_numbers(session: Session, *, prefix: str, count: int) -> list[str]:
    """Reserve `count` consecutive account numbers (region prefix + 10 digits) with one UPDATE."""
    first = reserve(session, "account_no", count)
    return [f"{prefix}{n:010d}" for n in range(first, first + count)]


def new_learner_row(ctx: NodeContext, *, id_type: str, normalised: str, blind: str, name: str, account_no: str) -> dict:
    """The column values of a new learner (used by account opening and by bulk import)."""
    return {
        "account_no": account_no,
        "id_type": id_type,
        "id_blind": blind,
        "id_cipher": ctx.cipher.encrypt(normalised),
        "id_masked": mask_id_number(normalised),
        "name_cipher": ctx.cipher.encrypt(name),
        "key_id": ctx.cipher.current_key_id,
        "pseudonym": f"urn:uuid:{uuid.uuid4()}",
        "leaf_salt": os.urandom(16),
    }


def find_learner(session: Session, ctx: NodeContext, *, id_type: str, id_number: str) -> Learner | None:
    normalised = normalise_id_number(id_type, id_number)
    blind = ctx.blind_index(id_type, normalised)
    return session.exec(select(Learner).where(Learner.id_blind == blind)).first()


def open_account(
    session: Session,
    ctx: NodeContext,
    *,
    id_type: str,
    id_number: str,
    name: str,
    password: str | None = None,
) -> tuple[Learner, bool]:
    """Open an account, or return the person's existing one: (learner, created)."""
    normalised = normalise_id_number(id_type, id_number)
    blind = ctx.blind_index(id_type, normalised)
    existing = session.exec(select(Learner).where(Learner.id_blind == blind)).first()
    if existing is not None:
        return existing, False
    (account_no,) = reserve_account_numbers(session, prefix=ctx.settings.region.account_prefix, count=1)
    row = new_learner_row(ctx, id_type=id_type, normalised=normalised, blind=blind, name=name, account_no=account_no)
    learner = Learner(**row, password_hash=hash_password(password) if password else None)
    try:
        with session.begin_nested():
            session.add(learner)
            session.flush()
    except IntegrityError:  # opened concurrently by another request: the person still has one account
        existing = session.exec(select(Learner).where(Learner.id_blind == blind)).first()
        if existing is None:
            raise
        return existing, False
    append_events(
        session,
        [
            EventSpec(
                kind="learner.opened",
                learner_id=learner.id,
                pseudonym=learner.pseudonym,
                data={"account": learner.account_no, "id_type": id_type},
            )
        ],
    )
    return learner, True


def learner_public(ctx: NodeContext, learner: Learner) -> LearnerPublic:
    return LearnerPublic(
        id=learner.id,
        account_no=learner.account_no,
        id_type=learner.id_type,
        id_number_masked=learner.id_masked,
        name=ctx.cipher.decrypt(learner.name_cipher, learner.key_id),
        pseudonym=learner.pseudonym,
        created_at=learner.created_at,
    )
