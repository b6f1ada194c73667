"""The printable transcript (成绩证明): a PDF rendered from the signed transcript presentation, with the
presentation itself embedded as the attachment `transcript.jsonld`, so that the paper and the file both verify.

* CJK text in reportlab's built-in CID font `STSong-Light` (Adobe-GB1; viewers supply the glyphs), so
  rendering needs no font file on the machine; Latin text in Helvetica.
* Bilingual: each label Chinese first, English after (texts in `node.credentials.messages`).
* The learner's name comes from the presentation (decrypted from the record when it was signed); no ID number.
* QR code by `segno`, drawn as vector squares; it carries the verification link (the presentation's `id`).
* `extract_presentation` reads the attachment back with `pypdf`, under tight size limits (a PDF posted by
  anyone to `POST /api/v1/verify` must not exhaust memory).
"""

from __future__ import annotations

import io
import json
from decimal import Decimal
from typing import Any

from node.credentials.messages import GROUPS, KINDS, text

__all__ = ["ATTACHMENT_NAME", "MAX_ATTACHMENT_BYTES", "MAX_PDF_BYTES", "PdfUnreadable", "extract_presentation",
           "render_transcript_pdf"]

ATTACHMENT_NAME = "transcript.jsonld"
MAX_PDF_BYTES = 10 * 1024 * 1024
MAX_ATTACHMENT_BYTES = 5 * 1024 * 1024
_CJK = "STSong-Light"
_LATIN = "Helvetica"


class PdfUnreadable(ValueError):
    """The PDF cannot be read, or carries no embedded signed transcript."""


def _fonts() -> None:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont

    if _CJK not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(_CJK))


def _both(key: str) -> str:
    zh, en = text("zh", key), text("en", key)
    return f"{zh} {en}" if zh != en else zh


def _dec(value: Any) -> str:
    if value in (None, ""):
        return ""
    try:
        return format(Decimal(str(value)).normalize(), "f")
    except ArithmeticError:
        return str(value)


def _rows(presentation: dict) -> list[dict]:
    rows = []
    for credential in presentation.get("verifiableCredential") or []:
        subject = credential.get("credentialSubject") or {}
        bank = subject.get("creditBank") or {}
        institution = (bank.get("issuingInstitution") or {}).get("name") or bank.get("institutionCode") or ""
        kind_zh, kind_en = KINDS.get(bank.get("achievementKind") or "", ("其他", "Other"))
        credits, hours = _dec(bank.get("credits")), _dec(bank.get("hours"))
        rows.append({
            "category": f"{kind_zh}\n{kind_en}",
            "institution": institution,
            "title": (subject.get("achievement") or {}).get("name") or credential.get("name") or "",
            "date": bank.get("earnedOn") or (credential.get("awardedDate") or "")[:10],
            "credits": " / ".join(v for v in (credits, f"{hours} h" if hours else "") if v),
            "score": bank.get("score") or "",
            "level": bank.get("level") or "",
        })
    return rows


class _QrFlowable:
    """A QR code drawn as squares (no image library), `size` points wide."""

    def __new__(cls, data: str, size: float):
        import segno
        from reportlab.platypus import Flowable

        class QrCode(Flowable):
            def __init__(self) -> None:
                super().__init__()
                self.qr = segno.make(data, error="m", micro=False)
                self.size = size
                self.width = self.height = size

            def draw(self) -> None:
                matrix = self.qr.matrix
                border = 2
                n = len(matrix) + 2 * border
                cell = self.size / n
                canv = self.canv
                canv.setFillColorRGB(0, 0, 0)
                for y, row in enumerate(matrix):
                    for x, bit in enumerate(row):
                        if bit:
                            canv.rect((x + border) * cell, self.size - (y + border + 1) * cell, cell, cell,
                                      stroke=0, fill=1)

        return QrCode()


def render_transcript_pdf(presentation: dict, *, issuer_name_zh: str, issuer_name_en: str) -> bytes:
    """The PDF of a signed `CreditBankTranscript` presentation, the presentation embedded as
    `transcript.jsonld`. The verification link printed (and in the QR code) is the presentation's `id`."""
    from reportlab.lib import colors
    from reportlab.lib.enums import TA_CENTER
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
    from xml.sax.saxutils import escape

    _fonts()
    verify_url = str(presentation.get("id") or "")
    base = ParagraphStyle("base", fontName=_CJK, fontSize=9, leading=12, wordWrap="CJK")
    small = ParagraphStyle("small", parent=base, fontSize=7.5, leading=10)
    title = ParagraphStyle("title", parent=base, fontSize=20, leading=26, alignment=TA_CENTER)
    subtitle = ParagraphStyle("subtitle", parent=base, fontSize=10, leading=14, alignment=TA_CENTER,
                              textColor=colors.HexColor("#444444"))
    head = ParagraphStyle("head", parent=base, fontSize=11, leading=15, spaceBefore=6, spaceAfter=3)

    def p(value: Any, style: ParagraphStyle = base) -> Paragraph:
        return Paragraph(escape(str(value)).replace("\n", "<br/>"), style)

    issued = str(presentation.get("issuedAt") or "")
    story: list[Any] = [
        p(f"{text('zh', 'transcript.title')}", title),
        p(text("en", "transcript.title"), subtitle),
        p(f"{text('zh', 'transcript.subtitle')} / {text('en', 'transcript.subtitle')}", subtitle),
        Spacer(1, 5 * mm),
    ]
    meta = [
        [p(_both("transcript.issuer")), p(f"{issuer_name_zh}\n{issuer_name_en}")],
        [p(_both("transcript.learner")), p(presentation.get("learnerName") or "")],
        [p(_both("transcript.issued")), p(issued.replace("T", " ").replace("Z", " UTC"))],
        [p(_both("transcript.id")), p(verify_url, small)],
    ]
    meta_table = Table(meta, colWidths=[38 * mm, 132 * mm])
    meta_table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"),
                                    ("LINEBELOW", (0, -1), (-1, -1), 0.5, colors.grey)]))
    story += [meta_table, Spacer(1, 4 * mm), p(_both("transcript.records"), head)]

    rows = _rows(presentation)
    header = [p(_both(f"transcript.col.{c}"), small)
              for c in ("category", "institution", "title", "date", "credits", "score")]
    body = [[p(r["category"], small), p(r["institution"], small),
             p(r["title"] + (f"（{r['level']}）" if r["level"] else "")), p(r["date"], small),
             p(r["credits"], small), p(r["score"])] for r in rows]
    if not body:
        body = [[p(_both("transcript.none")), "", "", "", "", ""]]
    records = Table([header, *body], colWidths=[28 * mm, 32 * mm, 46 * mm, 22 * mm, 24 * mm, 18 * mm],
                    repeatRows=1)
    records.setStyle(TableStyle([
        ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee")),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
    ]))
    story += [records, Spacer(1, 3 * mm), p(_both("transcript.totals"), head)]
    totals = [[p(_both(f"transcript.col.{c}"), small) for c in ("group", "count", "total_credits", "total_hours")]]
    for row in presentation.get("totals") or []:
        zh, en = GROUPS.get(row.get("group") or "", ("其他", "Other"))
        totals.append([p(f"{zh} {en}"), p(row.get("count", "")), p(_dec(row.get("credits"))),
                       p(_dec(row.get("hours")))])
    totals_table = Table(totals, colWidths=[60 * mm, 30 * mm, 30 * mm, 30 * mm])
    totals_table.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
                                      ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee"))]))
    story += [totals_table, Spacer(1, 6 * mm)]

    verify_block = Table([[
        _QrFlowable(verify_url or "about:blank", 30 * mm),
        [p(_both("transcript.verify"), head), p(verify_url), Spacer(1, 2 * mm),
         p(text("zh", "transcript.verify_help"), small), p(text("en", "transcript.verify_help"), small)],
    ]], colWidths=[36 * mm, 134 * mm])
    verify_block.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP")]))
    story += [verify_block, Spacer(1, 8 * mm)]
    seal = Table([[p(f"{_both('transcript.seal')}：{issuer_name_zh}"), p(issued[:10])]],
                 colWidths=[130 * mm, 40 * mm])
    seal.setStyle(TableStyle([("LINEABOVE", (0, 0), (-1, 0), 0.8, colors.HexColor("#b00000")),
                              ("TEXTCOLOR", (0, 0), (-1, -1), colors.HexColor("#b00000"))]))
    story += [seal, Spacer(1, 2 * mm),
              p(f"{text('zh', 'transcript.no_id')} {text('en', 'transcript.no_id')}", small)]

    out = io.BytesIO()
    doc = SimpleDocTemplate(out, pagesize=A4, leftMargin=20 * mm, rightMargin=20 * mm, topMargin=18 * mm,
                            bottomMargin=18 * mm, title=f"成绩证明 Academic Transcript / {issuer_name_zh}",
                            author=issuer_name_zh, subject=verify_url, creator="creditnode")
    doc.build(story)
    return _attach(out.getvalue(), json.dumps(presentation, ensure_ascii=False, indent=1).encode("utf-8"))


def _attach(pdf: bytes, attachment: bytes) -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    writer.add_attachment(ATTACHMENT_NAME, attachment)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def extract_presentation(pdf: bytes) -> dict:
    """The signed presentation embedded in a transcript PDF. Raises PdfUnreadable with the reason."""
    import logging

    import pypdf
    from pypdf.errors import PyPdfError

    if len(pdf) > MAX_PDF_BYTES:
        raise PdfUnreadable(f"the PDF is larger than {MAX_PDF_BYTES} bytes")
    if not pdf.startswith(b"%PDF-"):
        raise PdfUnreadable("not a PDF file")
    limits = {name: MAX_ATTACHMENT_BYTES for name in (
        "zlib_maximum_output_length", "lzw_maximum_output_length", "run_length_maximum_output_length",
        "brotli_maximum_output_length", "jbig2_maximum_output_length", "array_based_stream_maximum_output_length",
        "maximum_declared_stream_length")}
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # hostile PDFs make pypdf chatty
    try:
        with pypdf.apply_configuration(**limits, stream_decoding_work_maximum_length=4 * MAX_ATTACHMENT_BYTES):
            reader = pypdf.PdfReader(io.BytesIO(pdf), root_object_recovery_limit=1000,
                                     xref_stream_maximum_entries=100_000)
            found = reader.attachments.get(ATTACHMENT_NAME)
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError,
            OSError, MemoryError) as exc:
        raise PdfUnreadable(f"the PDF cannot be read ({type(exc).__name__})") from None
    if not found:
        raise PdfUnreadable(f"the PDF carries no signed transcript ({ATTACHMENT_NAME})")
    data = found[0]
    if len(data) > MAX_ATTACHMENT_BYTES:
        raise PdfUnreadable("the embedded transcript is too large")
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise PdfUnreadable(f"the embedded {ATTACHMENT_NAME} is not JSON") from None
    if not isinstance(document, dict):
        raise PdfUnreadable(f"the embedded {ATTACHMENT_NAME} is not a JSON object")
    return document
