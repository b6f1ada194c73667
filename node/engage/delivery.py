"""Sending notices by e-mail and SMS through a persisted queue (`notice_delivery`), like the federation outbox:

1. **claim** (one short transaction): due pending rows (`FOR UPDATE SKIP LOCKED` on PostgreSQL), each given a
   lease (`next_attempt_at = now + LEASE_SECONDS`) and this worker's name, so another worker skips them;
2. **send** outside any transaction, through a `Sender` per channel;
3. **record** each outcome: sent; or a failure (attempts + 1, `next_attempt_at = now + min(2**attempts, 3600)`
   s), dead after `engage.delivery_max_attempts`. A permanent refusal (no address) is dead at once.

Senders: `SmtpSender` (smtplib; STARTTLS and login when configured), `LogSmsSender` (one log line per
message: the masked number and the notice's kind; never the text's values, never an ID number). A region
plugs its SMS gateway in by implementing `Sender`.
"""

from __future__ import annotations

import datetime as dt
import logging
import smtplib
import socket
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Protocol

import sqlalchemy as sa
from sqlmodel import select

from node.db import is_sqlite, session_scope
from node.models.engage import Notice, NoticeDelivery, NoticePreference

__all__ = ["LEASE_SECONDS", "LogSmsSender", "Message", "PermanentFailure", "Sender", "SmtpSender",
           "backoff_seconds", "flush_deliveries", "senders_for"]

log = logging.getLogger("creditnode.engage.delivery")

LEASE_SECONDS = 120
MAX_BACKOFF_SECONDS = 3600


def backoff_seconds(attempts: int) -> int:
    return min(2 ** attempts, MAX_BACKOFF_SECONDS)


class PermanentFailure(Exception):
    """Re-sending cannot help (no address, address refused): the delivery is dead at once."""


@dataclass(frozen=True)
class Message:
    to: str
    subject: str
    body: str
    kind: str


class Sender(Protocol):
    def send(self, message: Message) -> None: ...


class SmtpSender:
    """A real SMTP client (smtplib). Raises on failure; a 5xx recipient refusal is permanent."""

    def __init__(self, settings: Any) -> None:
        self.s = settings.engage

    def send(self, message: Message) -> None:
        mail = EmailMessage()
        mail["From"], mail["To"], mail["Subject"] = self.s.mail_from, message.to, message.subject
        mail["Date"], mail["Message-ID"] = formatdate(localtime=False), make_msgid(domain="creditnode.invalid")
        mail.set_content(message.body)
        try:
            with smtplib.SMTP(self.s.smtp_host, self.s.smtp_port, timeout=self.s.smtp_timeout_seconds) as smtp:
                if self.s.smtp_starttls:
                    smtp.starttls()
                if self.s.smtp_username:
                    smtp.login(self.s.smtp_username,
                               self.s.smtp_password.get_secret_value() if self.s.smtp_password else "")
                smtp.send_message(mail)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            if codes and all(500 <= code < 600 for code in codes):
                raise PermanentFailure("recipient refused") from None
            raise


def mask_phone(phone: str) -> str:
    return phone[:3] + "*" * max(len(phone) - 5, 0) + phone[-2:] if len(phone) > 5 else "*" * len(phone)


class LogSmsSender:
    """SMS as an interface: this implementation writes one log line per message (masked number, kind only)."""

    def send(self, message: Message) -> None:
        log.info("sms to %s: notice %s (%d characters)", mask_phone(message.to), message.kind, len(message.body))


class _Off:
    def send(self, message: Message) -> None:
        raise PermanentFailure("channel switched off")


def senders_for(settings: Any) -> dict[str, Sender]:
    return {"email": SmtpSender(settings) if settings.engage.email_enabled else _Off(),
            "sms": LogSmsSender() if settings.engage.sms_sender == "log" else _Off()}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class _Claimed:
    id: int
    channel: str
    attempts: int
    kind: str
    params: dict
    link: str | None
    address: str | None


def _claim(ctx: Any, worker: str, now: dt.datetime, batch: int) -> list[_Claimed]:
    with session_scope(ctx.engine) as session:
        query = (select(NoticeDelivery).where(NoticeDelivery.state == "pending", NoticeDelivery.next_attempt_at <= now)
                 .order_by(NoticeDelivery.next_attempt_at, NoticeDelivery.id).limit(batch))
        if not is_sqlite(ctx.engine):
            query = query.with_for_update(skip_locked=True)
        rows = session.exec(query).all()
        if not rows:
            return []
        session.execute(sa.update(NoticeDelivery).where(NoticeDelivery.id.in_([r.id for r in rows]))
                        .values(next_attempt_at=now + dt.timedelta(seconds=LEASE_SECONDS), claimed_by=worker))
        notices = {n.id: n for n in session.exec(select(Notice).where(
            Notice.id.in_({r.notice_id for r in rows}))).all()}
        prefs = {p.learner_id: p for p in session.exec(select(NoticePreference).where(
            NoticePreference.learner_id.in_({r.learner_id for r in rows}))).all()}
        claimed = []
        for row in rows:
            notice, pref = notices[row.notice_id], prefs.get(row.learner_id)
            cipher = None if pref is None else pref.email_cipher if row.channel == "email" else pref.phone_cipher
            address = ctx.cipher.decrypt(cipher, pref.key_id) if cipher and pref and pref.key_id else None
            claimed.append(_Claimed(row.id, row.channel, row.attempts, notice.kind, notice.params, notice.link,
                                    address))
        return claimed


def _message(ctx: Any, item: _Claimed) -> Message:
    from node.portal.i18n import translator

    zh, en = translator("zh"), translator("en")
    params = {k: v for k, v in item.params.items() if isinstance(v, str | int)}
    subject = f"{zh(f'notice.kind.{item.kind}')} / {en(f'notice.kind.{item.kind}')}"
    lines = [zh(f"notice.text.{item.kind}", **params), en(f"notice.text.{item.kind}", **params)]
    if item.link:
        lines.append(ctx.settings.base_url.rstrip("/") + item.link)
    lines.append(zh("notice.mail_footer") + " / " + en("notice.mail_footer"))
    return Message(to=item.address or "", subject=subject[:200], body="\n\n".join(lines), kind=item.kind)


def flush_deliveries(ctx: Any, *, senders: dict[str, Sender] | None = None, now: dt.datetime | None = None) -> dict:
    """Send the due deliveries once; returns counts {sent, failed, dead}."""
    senders = senders or senders_for(ctx.settings)
    now = now or _now()
    worker = f"{socket.gethostname()[:40]}:{uuid.uuid4().hex[:12]}"
    claimed = _claim(ctx, worker, now, ctx.settings.engage.delivery_batch)
    report = {"sent": 0, "failed": 0, "dead": 0}
    max_attempts = ctx.settings.engage.delivery_max_attempts
    for item in claimed:
        error, permanent = None, False
        try:
            if not item.address:
                raise PermanentFailure("no address")
            senders[item.channel].send(_message(ctx, item))
        except PermanentFailure as exc:
            error, permanent = str(exc), True
        except Exception as exc:  # a relay down, a timeout, a refusal: try again later
            error = f"{type(exc).__name__}: {str(exc)[:200]}"
        done = _now()
        with session_scope(ctx.engine) as session:
            values: dict[str, Any]
            if error is None:
                values = dict(state="sent", sent_at=done, attempts=item.attempts + 1, claimed_by=None,
                              last_error=None)
                report["sent"] += 1
            elif permanent or item.attempts + 1 >= max_attempts:
                values = dict(state="dead", attempts=item.attempts + 1, claimed_by=None, last_error=error)
                report["dead"] += 1
                log.warning("notice delivery %s (%s) dead after %d attempt(s): %s", item.id, item.channel,
                            item.attempts + 1, error)
            else:
                values = dict(attempts=item.attempts + 1, claimed_by=None, last_error=error,
                              next_attempt_at=done + dt.timedelta(seconds=backoff_seconds(item.attempts + 1)))
                report["failed"] += 1
            session.execute(sa.update(NoticeDelivery).where(NoticeDelivery.id == item.id,
                                                            NoticeDelivery.claimed_by == worker).values(**values))
    return report
