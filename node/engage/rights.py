"""The learner's data rights (PIPL arts. 44–47; docs/privacy.md): a copy of everything held about them, a
correction request, the retention rules; an institution's extract of what it deposited.

The export is generic: every table of the schema with a `learner_id` column is read for the learner (so a
table added later is exported without a change here), plus the account itself and the audit entries about
the account. Secrets that are not the learner's data are left out (password hash, blind index, the
ciphertexts and key ids, ledger salts); encrypted personal fields are exported decrypted (the name, the
notice address and phone) and the ID number masked, as the account pages show it.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, SQLModel, select

from node.audit.service import record
from node.deps import Principal
from node.errors import Conflict, NotFound
from node.models import Achievement, AuditEntry, Learner, Organisation, utcnow
from node.models.engage import CorrectionRequest, NoticePreference

__all__ = ["EXCLUDED_COLUMNS", "data_export", "export_pdf", "institution_rows", "learner_tables",
           "open_correction", "retention_rules"]

# Columns never exported: secrets of the node, not data about the person (or kept encrypted and shown below).
EXCLUDED_COLUMNS = frozenset({"password_hash", "id_blind", "id_cipher", "name_cipher", "key_id", "leaf_salt",
                              "salt", "code_hash", "email_cipher", "phone_cipher", "reference_hash"})
_SKIP_TABLES = frozenset({"learner"})  # written as the account, decrypted


def learner_tables() -> list[sa.Table]:
    """Every table holding rows about one learner (a `learner_id` column), in a stable order."""
    return [t for name, t in sorted(SQLModel.metadata.tables.items())
            if "learner_id" in t.c and name not in _SKIP_TABLES]


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def data_export(session: Session, ctx: Any, learner_id: int) -> dict:
    learner = session.get(Learner, learner_id)
    if learner is None:
        raise NotFound("no such learner")
    account = {c.name: _plain(getattr(learner, c.name)) for c in Learner.__table__.c
               if c.name not in EXCLUDED_COLUMNS}
    account["name"] = ctx.cipher.decrypt(learner.name_cipher, learner.key_id)
    account["has_password"] = learner.password_hash is not None
    tables: dict[str, list[dict]] = {}
    for table in learner_tables():
        columns = [c for c in table.c if c.name not in EXCLUDED_COLUMNS]
        order = list(table.primary_key.columns) or columns[:1]
        rows = session.execute(sa.select(*columns).where(table.c.learner_id == learner_id).order_by(*order))
        tables[table.name] = [{k: _plain(v) for k, v in row._mapping.items()} for row in rows]
    pref = session.get(NoticePreference, learner_id)
    if pref is not None and pref.key_id:
        for row in tables.get("notice_preference", []):
            row["email"] = ctx.cipher.decrypt(pref.email_cipher, pref.key_id) if pref.email_cipher else None
            row["phone"] = ctx.cipher.decrypt(pref.phone_cipher, pref.key_id) if pref.phone_cipher else None
    audit = session.exec(select(AuditEntry).where(AuditEntry.target_type == "learner",
                                                  AuditEntry.target_id == str(learner_id))
                         .order_by(AuditEntry.id)).all()
    tables["audit_log (about the account)"] = [
        {"at": _plain(a.at), "actor_kind": a.actor_kind, "actor_name": a.actor_name, "action": a.action,
         "outcome": a.outcome} for a in audit]
    return {"format": "creditnode-learner-export/1", "node": ctx.node_id, "generated_at": _plain(utcnow()),
            "account": account, "tables": tables, "retention": retention_rules(ctx)}


def retention_rules(ctx: Any) -> list[dict]:
    """What is kept and for how long (docs/privacy.md is the long form)."""
    s = ctx.settings
    return [
        {"key": "archive", "what": "achievements, applications, conversions, transfers, ledger events",
         "kept": "for the life of the account; the ledger is append-only (docs/privacy.md: erasure)"},
        {"key": "audit", "what": "audit entries of every staff action and every access to the account",
         "kept": "at least 6 months (等级保护 2.0 level 3); the node keeps them, append-only"},
        {"key": "import_reports", "what": "rejected-row reports of bulk deposits (ID numbers masked)",
         "kept": f"{s.imports.report_retention_days} days", "days": s.imports.report_retention_days},
        {"key": "failed_uploads", "what": "encrypted uploads of failed bulk deposits",
         "kept": f"{s.imports.failed_upload_retention_days} days", "days": s.imports.failed_upload_retention_days},
        {"key": "evidence", "what": "evidence files of applications (encrypted)",
         "kept": "with the application they support"},
        {"key": "notices", "what": "notices and their e-mail/SMS deliveries; your address and phone (encrypted)",
         "kept": "for the life of the account; address and phone until you remove them"},
        {"key": "counselling", "what": "the what-ifs an outlet ran with your consent code",
         "kept": "for the life of the account (who ran them is audited)"},
    ]


# -- correction requests -------------------------------------------------------------------------------


def open_correction(session: Session, *, learner: Principal, achievement_id: int, message: str) -> CorrectionRequest:
    achievement = session.get(Achievement, achievement_id)
    if achievement is None or achievement.learner_id != learner.id:  # another learner's does not exist for them
        raise NotFound("no such achievement")
    if achievement.status != "deposited":
        raise Conflict("only a deposited record can be corrected", code="illegal_transition",
                       detail={"state": achievement.status, "action": "request_correction"})
    existing = session.exec(select(CorrectionRequest).where(
        CorrectionRequest.achievement_id == achievement_id, CorrectionRequest.state == "open")).first()
    if existing is not None:
        raise Conflict("a correction of this record is already waiting", code="duplicate")
    row = CorrectionRequest(learner_id=learner.id, achievement_id=achievement_id, message=message)
    session.add(row)
    session.flush()
    record(session, actor=learner, action="correction.request", target_type="learner", target_id=learner.id,
           detail={"correction_request": row.id, "achievement_id": achievement_id})
    return row


# -- the printable copy --------------------------------------------------------------------------------


def export_pdf(export: dict, *, region_zh: str, region_en: str) -> bytes:
    """A readable PDF of the export: the account, then each table as label/value lines (reportlab, the CJK
    font of the transcript PDF: node.credentials.pdf)."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
    from xml.sax.saxutils import escape

    from node.credentials.pdf import _CJK, _fonts

    _fonts()
    title = ParagraphStyle("t", fontName=_CJK, fontSize=15, leading=20)
    head = ParagraphStyle("h", fontName=_CJK, fontSize=11, leading=15, spaceBefore=6)
    cell = ParagraphStyle("c", fontName=_CJK, fontSize=7.5, leading=9.5)
    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=15 * mm,
                            bottomMargin=15 * mm, title="个人信息副本 Copy of personal data")
    story: list[Any] = [Paragraph(escape(f"{region_zh} 个人信息副本 / {region_en}: copy of your personal data"),
                                  title),
                        Paragraph(escape(f"生成时间 Generated {export['generated_at']} · {export['node']}"), cell),
                        Spacer(1, 4 * mm)]

    def block(name: str, rows: list[dict]) -> None:
        story.append(Paragraph(escape(f"{name} ({len(rows)})"), head))
        for row in rows[:2000]:
            data = [[Paragraph(escape(str(k)), cell), Paragraph(escape(_short(v)), cell)] for k, v in row.items()]
            table = Table(data, colWidths=[45 * mm, 135 * mm])
            table.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                                       ("VALIGN", (0, 0), (-1, -1), "TOP")]))
            story.extend([table, Spacer(1, 2 * mm)])

    block("账户 Account", [export["account"]])
    for name, rows in export["tables"].items():
        block(name, rows)
    block("保存期限 Retention", export["retention"])
    doc.build(story)
    return buf.getvalue()


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value) if not isinstance(value, dict | list) else \
        __import__("json").dumps(value, ensure_ascii=False)
    return text if len(text) <= 1500 else text[:1500] + " …"


# -- an institution's extract --------------------------------------------------------------------------

INSTITUTION_COLUMNS = ("achievement_id", "account_no", "id_masked", "student_no", "type", "code", "title",
                       "programme_name", "credits", "hours", "score", "level", "term", "earned_on",
                       "education_level_code", "education_type_code", "graduation_year", "status", "source",
                       "import_job_id", "created_at")


def institution_rows(session: Session, organisation_id: int, *, batch: int = 5000) -> Iterator[str]:
    """CSV lines (header first) of every achievement the institution deposited, read in id order in batches."""
    org = session.get(Organisation, organisation_id)
    if org is None:
        raise NotFound("no such organisation")
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(INSTITUTION_COLUMNS)
    yield "\ufeff" + out.getvalue()
    after = 0
    while True:
        rows = session.execute(
            select(Achievement, Learner.account_no, Learner.id_masked)
            .join(Learner, Learner.id == Achievement.learner_id)
            .where(Achievement.issuer_org_id == organisation_id, Achievement.id > after)
            .order_by(Achievement.id).limit(batch)).all()
        if not rows:
            return
        out = io.StringIO()
        writer = csv.writer(out)
        for a, account_no, masked in rows:
            writer.writerow([a.id, account_no, masked, a.student_no or "", a.type, a.code, _csv(a.title),
                             _csv(a.programme_name or ""), _plain(a.credits) or "", _plain(a.hours) or "",
                             _csv(a.score_text or ""), a.level or "", a.term or "", _plain(a.earned_on) or "",
                             a.education_level_code or "", a.education_type_code or "", a.graduation_year or "",
                             a.status, a.source, a.import_job_id or "", _plain(a.created_at)])
        after = rows[-1][0].id
        yield out.getvalue()


def _csv(text: str) -> str:
    """No formula injection when the file is opened in a spreadsheet."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
