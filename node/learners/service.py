"""Learner accounts: opening (idempotent per person), lookup by blind index, masked public views; activation
codes, online registrations awaiting verification, and the letter an outlet hands over (docs/accounts.md)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import secrets
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from config.settings import Settings
from node.context import NodeContext
from node.counters import reserve
from node.errors import BadRequest
from node.learners.schemas import LearnerPublic
from node.ledger.service import EventSpec, append_events
from node.models import ActivationCode, Learner, LearnerRegistration, utcnow
from node.security.idnumbers import mask_id_number, normalise_id_number
from node.security.passwords import hash_password

__all__ = [
    "IssuedCode",
    "Registration",
    "activation_letter",
    "canonical_code",
    "close_registrations",
    "find_learner",
    "learner_by_blind",
    "find_learner_by_account",
    "issue_activation_code",
    "learner_public",
    "live_activation_code",
    "new_learner_row",
    "open_account",
    "register_online",
    "reserve_account_numbers",
    "set_verified_password",
    "use_activation_code",
    "verify_registration",
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


def find_learner_by_account(session: Session, account_no: str) -> Learner | None:
    """The learner with this account number; None for a value no account number has (a NUL byte would be
    refused by PostgreSQL in a text comparison, a 500, so it never reaches the query)."""
    if not account_no or "\x00" in account_no or len(account_no) > 20:
        return None
    return session.exec(select(Learner).where(Learner.account_no == account_no)).first()


def learner_by_blind(session: Session, blind: str) -> Learner | None:
    """The learner whose ID number has this blind index (the one lookup of a person by ID number)."""
    return session.exec(select(Learner).where(Learner.id_blind == blind)).first()


def find_learner(session: Session, ctx: NodeContext, *, id_type: str, id_number: str) -> Learner | None:
    normalised = normalise_id_number(id_type, id_number)
    return learner_by_blind(session, ctx.blind_index(id_type, normalised))


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
    existing = learner_by_blind(session, blind)
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
        existing = learner_by_blind(session, blind)
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


# -- activation codes and online registrations (docs/accounts.md) -----------------------------------------

# Crockford's base32: no I, L, O or U, so a code read aloud or typed from a letter is unambiguous.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CONFUSABLE = str.maketrans({"O": "0", "I": "1", "L": "1"})
_FOLD = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}
CODE_LENGTH = 12  # 60 bits
MAX_PENDING_PER_ID = 3


def new_code() -> str:
    """A fresh one-time code (activation code or registration reference), shown as XXXX-XXXX-XXXX."""
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(CODE_LENGTH))
    return "-".join(raw[i : i + 4] for i in range(0, CODE_LENGTH, 4))


def canonical_code(text: str) -> str | None:
    """A code as typed (any case, hyphens or spaces, full-width, O for 0, I or L for 1), or None."""
    value = text.translate(_FOLD).upper().replace("-", "").replace(" ", "").translate(_CONFUSABLE)
    if len(value) != CODE_LENGTH or any(c not in _ALPHABET for c in value):
        return None
    return value


def code_digest(secret: bytes, purpose: str, code: str) -> str:
    """What is stored of a code: HMAC-SHA256 under the node's token secret (a stolen database alone cannot
    test guesses). `code` is canonical."""
    return hmac.new(secret, f"{purpose}:{code}".encode(), hashlib.sha256).hexdigest()


@dataclass
class IssuedCode:
    learner: Learner
    code: str
    purpose: str  # activation | reset
    expires_at: dt.datetime


def issue_activation_code(session: Session, *, learner: Learner, secret: bytes, ttl_days: int,
                          issued_by: str) -> IssuedCode:
    """A new one-time code for the learner; any earlier unused code stops working. `reset` if the account
    already has a password (it keeps working until the code is used), else `activation`."""
    now = utcnow()
    t = ActivationCode.__table__
    session.execute(sa.update(t).where(t.c.learner_id == learner.id, t.c.used_at.is_(None),
                                       t.c.revoked_at.is_(None)).values(revoked_at=now))
    code = new_code()
    purpose = "reset" if learner.password_hash else "activation"
    expires = now + dt.timedelta(days=ttl_days)
    session.add(ActivationCode(learner_id=learner.id, code_hash=code_digest(secret, "activation", canonical_code(code)),
                               purpose=purpose, issued_by=issued_by[:100], created_at=now, expires_at=expires))
    session.flush()
    return IssuedCode(learner, code, purpose, expires)


def live_activation_code(session: Session, *, learner: Learner, code: str, secret: bytes) -> ActivationCode | None:
    """The learner's unused, unexpired code matching `code` as typed, or None."""
    canonical = canonical_code(code)
    if canonical is None:
        return None
    row = session.exec(select(ActivationCode).where(
        ActivationCode.learner_id == learner.id,
        ActivationCode.code_hash == code_digest(secret, "activation", canonical),
        ActivationCode.used_at.is_(None), ActivationCode.revoked_at.is_(None))).first()
    if row is None or _aware(row.expires_at) <= utcnow():
        return None
    return row


def use_activation_code(session: Session, *, row: ActivationCode, learner: Learner, password_hash: str) -> bool:
    """Spend the code (once: a concurrent use of the same code finds it spent and gets False), set the
    password, revoke earlier tokens and close the person's pending online registrations."""
    t = ActivationCode.__table__
    spent = session.execute(sa.update(t).where(t.c.id == row.id, t.c.used_at.is_(None), t.c.revoked_at.is_(None))
                            .values(used_at=utcnow()))
    if spent.rowcount != 1:
        return False
    set_verified_password(session, learner=learner, password_hash=password_hash)
    return True


def set_verified_password(session: Session, *, learner: Learner, password_hash: str) -> None:
    """The holder's identity was checked (an outlet, or a code the outlet handed over): set the password,
    revoke every earlier token, and close pending online registrations for the number."""
    from node.auth.service import invalidate_tokens

    had_password = learner.password_hash is not None
    learner.password_hash = password_hash
    session.add(learner)
    session.flush()
    if had_password:
        invalidate_tokens(session, learner)
    close_registrations(session, id_blind=learner.id_blind)


def close_registrations(session: Session, *, id_blind: str) -> int:
    t = LearnerRegistration.__table__
    return session.execute(sa.delete(t).where(t.c.id_blind == id_blind)).rowcount


@dataclass
class Registration:
    reference: str
    expires_at: dt.datetime


def register_online(session: Session, ctx: NodeContext, *, id_type: str, id_number: str, name: str,
                    password_hash: str) -> Registration:
    """Record an online registration awaiting identity verification. It never reads or touches the `learner`
    table, so it does the same work (and the caller answers the same) whether or not the person has an
    account. At most MAX_PENDING_PER_ID registrations wait per ID number (the oldest go), expired ones are
    purged."""
    normalised = normalise_id_number(id_type, id_number)
    blind = ctx.blind_index(id_type, normalised)
    now = utcnow()
    t = LearnerRegistration.__table__
    session.execute(sa.delete(t).where(t.c.expires_at < now))
    older = session.execute(sa.select(t.c.id).where(t.c.id_blind == blind).order_by(t.c.id.desc())
                            .offset(MAX_PENDING_PER_ID - 1)).scalars().all()
    if older:
        session.execute(sa.delete(t).where(t.c.id.in_(older)))
    reference = new_code()
    expires = now + dt.timedelta(days=ctx.settings.accounts.registration_ttl_days)
    row = LearnerRegistration(reference_hash=code_digest(ctx.token_secret, "registration", canonical_code(reference)),
                              id_type=id_type, id_blind=blind, name_cipher=ctx.cipher.encrypt(name),
                              key_id=ctx.cipher.current_key_id, password_hash=password_hash, created_at=now,
                              expires_at=expires)
    session.add(row)
    session.flush()
    return Registration(reference, expires)


def verify_registration(session: Session, ctx: NodeContext, *, reference: str, id_type: str,
                        id_number: str) -> tuple[Learner, bool]:
    """Staff at an outlet have checked the ID card of the person holding the registration's reference: open
    the account (or take the existing one) with the password chosen at registration. (learner, created)."""
    normalised = normalise_id_number(id_type, id_number)
    blind = ctx.blind_index(id_type, normalised)
    canonical = canonical_code(reference)
    row = None
    if canonical is not None:
        row = session.exec(select(LearnerRegistration).where(
            LearnerRegistration.reference_hash == code_digest(ctx.token_secret, "registration", canonical))).first()
    if row is None or row.id_blind != blind or _aware(row.expires_at) <= utcnow():
        raise BadRequest("no pending registration has this reference for this ID number (it may have expired; "
                         "the person can register again or be given an activation code)",
                         code="invalid_registration")
    name = ctx.cipher.decrypt(row.name_cipher, row.key_id)
    learner, created = open_account(session, ctx, id_type=id_type, id_number=normalised, name=name)
    set_verified_password(session, learner=learner, password_hash=row.password_hash)
    return learner, created


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def activation_letter(settings: Settings, issued: IssuedCode, *, name: str) -> str:
    """The printable letter an outlet hands over with a code: Chinese first, then English."""
    region = settings.region
    learner = issued.learner
    until = issued.expires_at.astimezone(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m-%d %H:%M")
    url = settings.base_url
    zh_what = "重置密码" if issued.purpose == "reset" else "激活账户"
    en_what = "reset your password" if issued.purpose == "reset" else "activate your account"
    return "\n".join([
        f"{region.name_zh} · 学习成果账户{'密码重置' if issued.purpose == 'reset' else '激活'}通知",
        "",
        f"姓名：{name}",
        f"账户号：{learner.account_no}",
        f"证件号码：{learner.id_masked}",
        f"一次性激活码：{issued.code}",
        f"有效期至：{until}（北京时间）",
        "",
        f"请访问 {url}，用账户号或证件号码加上本激活码{zh_what}并设置新密码。激活码只能使用一次，",
        "新的激活码签发后旧码即失效。请妥善保管本函，不要把激活码告诉任何人；工作人员不会向您索要激活码或密码。",
        "",
        f"{region.name_en} · learning account {'password reset' if issued.purpose == 'reset' else 'activation'}",
        "",
        f"Name: {name}",
        f"Account number: {learner.account_no}",
        f"ID number: {learner.id_masked}",
        f"One-time code: {issued.code}",
        f"Valid until: {until} (UTC+8)",
        "",
        f"Go to {url} and use your account number or ID number with this code to {en_what} and choose a new",
        "password. The code works once, and stops working when a newer one is issued. Keep this letter private:",
        "never tell anyone the code; staff will never ask you for it or for your password.",
    ])
