"""Identity and proofs over HTTP: the DID document, the credit-bank context, signed credentials and
transcripts, the ledger's checkpoints and proofs, status lists, reviewed revocation, and verification."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit
from typing import Annotated

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from node.audit.service import record
from node.credentials.context import (
    CREDITBANK_CONTEXT,
    CREDITBANK_CONTEXT_PATH,
    FEDERATION_CONTEXT_PATH,
    federation_context_bytes,
)
from node.credentials.messages import KINDS, pick_language, text
from node.credentials.pdf import MAX_PDF_BYTES, PdfUnreadable, extract_presentation
from node.credentials.service import (
    DEPOSITED_RECORDS,
    ONE_RECORD,
    achievement_credential_json,
    cached_credential,
    issued_transcript,
    printed_transcript,
    reused_transcript,
    transcript_json,
)
from node.credentials.status import decide_revocation, request_revocation, status_list_credential
from node.credentials.verify import Report, person_view, verify_document
from node.deps import (
    CtxDep,
    LearnerCallDep,
    Principal,
    SessionDep,
    end_request_transaction,
    public,
    require_roles,
)
from node.errors import BadRequest, NotFound, PayloadTooLarge, UnsupportedMediaType
from node.fastlane import Lane, PreparedRead, current, fast_read
from node.ledger.log import consistency, event_by_seq, inclusion, latest_checkpoint, served_note
from node.ledger.service import public_view
from node.models import Learner
from node.roles import Role
from node.models.types import Int64
from node.security.ratelimit import per_client_limit

router = APIRouter(tags=["identity and proofs"])
Public = [Depends(public)]
Staff = Annotated[Principal, Depends(require_roles(Role.OUTLET_STAFF, Role.BRANCH_REVIEWER, Role.CENTRE_REVIEWER))]
CentreReviewer = Annotated[Principal, Depends(require_roles(Role.CENTRE_REVIEWER))]

_LD = "application/ld+json"


@router.get("/.well-known/did.json", dependencies=Public)
def did_document(ctx: CtxDep) -> JSONResponse:
    """This node's DID document (`did:web`), with the keys its credentials and peer requests are signed by."""
    return JSONResponse(ctx.identity.did_document(), media_type="application/did+json")


def _base_path(ctx) -> str:
    return urlsplit(ctx.settings.base_url).path.strip("/")


@router.get("/did.json", dependencies=Public)
def did_document_behind_prefix(ctx: CtxDep) -> JSONResponse:
    """A base URL with a path (`https://host/creditbank`) makes `did:web:host:creditbank`, which resolvers fetch
    at `https://host/creditbank/did.json`: served here when the proxy strips the path, and at
    `/creditbank/did.json` when it does not."""
    if not _base_path(ctx):
        raise NotFound("this node's DID document is at /.well-known/did.json")
    return did_document(ctx)


@router.get("/{prefix:path}/did.json", dependencies=Public, include_in_schema=False)
def did_document_at_path(prefix: str, ctx: CtxDep) -> JSONResponse:
    if not _base_path(ctx) or prefix.strip("/") != _base_path(ctx):
        raise NotFound("no DID document here")
    return did_document(ctx)


@router.get(CREDITBANK_CONTEXT_PATH, dependencies=Public)
def creditbank_context() -> JSONResponse:
    """The old per-node context that credentials issued before the federation context name (kept, unchanged)."""
    return JSONResponse(CREDITBANK_CONTEXT, media_type=_LD)


@router.get(FEDERATION_CONTEXT_PATH, dependencies=Public)
def federation_context() -> Response:
    """A mirror of the federation context https://w3id.org/yangtze-credit-bank/v2: the exact bytes whose
    digestSRI the membership document pins (verifiers bundle it; docs/credentials.md)."""
    return Response(federation_context_bytes(), media_type=_LD,
                    headers={"Cache-Control": "public, max-age=86400, immutable"})


# -- credentials ----------------------------------------------------------------------------------


@router.get("/api/v1/me/credentials/{achievement_id}")
async def my_credential(achievement_id: Int64, call: LearnerCallDep) -> Response:
    """The signed credential of one of the learner's deposited (or revoked) achievements, with
    `eddsa-jcs-2022` and `eddsa-rdfc-2022` proofs; 404 if it is not theirs."""
    session, ctx, me = call.session, call.ctx, call.me

    def read() -> bytes:  # may sign (ms of CPU) and reserve the status-list index (a write), committed here
        data = achievement_credential_json(session, ctx, achievement_id, learner_id=me.id, rdfc=True)
        end_request_transaction()
        return data

    # a credential signed and cached was served by the fast lane (fast_credential below): what reaches the route
    # is to be signed, reserved or refused — in a worker thread
    data = await run_in_threadpool(read)
    return Response(data, media_type=_LD)


def _wants_pdf(request: Request) -> bool:
    return _accepts_pdf_first(request.headers.get("accept", ""))


def _accepts_pdf_first(accept: str) -> bool:
    """`Accept` names application/pdf with a higher (or equal, earlier) preference than any JSON type."""
    best: tuple[float, int, str] | None = None
    for position, part in enumerate(accept.split(",")[:20]):
        media, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        media = media.strip().lower()
        if media in ("application/pdf", "application/json", "application/ld+json", "*/*") and q > 0:
            if best is None or (-q, position) < (-best[0], best[1]):
                best = (q, position, media)
    return best is not None and best[2] == "application/pdf"


@router.get("/api/v1/me/transcript", responses={200: {"content": {
    "application/ld+json": {}, "application/pdf": {"schema": {"type": "string", "format": "binary"}}}}})
async def my_transcript(request: Request, call: LearnerCallDep) -> Response:
    """The learner's signed transcript (a `CreditBankTranscript` presentation); with `Accept: application/pdf`
    the printable 成绩证明, the presentation embedded, its QR code linking to `/verify/{token}`."""
    ctx, session, me = call.ctx, call.session, call.me

    def printed() -> Response:  # stores the printed transcript's verification row: a write, committed here
        pdf, row = printed_transcript(session, ctx, me.id)
        end_request_transaction()
        return Response(pdf, media_type="application/pdf", headers={
            "Content-Disposition": f'attachment; filename="transcript-{row.token}.pdf"',
            "Cache-Control": "no-store"})

    def signed() -> bytes:  # ~10 ms of CPU for 20 records (two proofs), unless reused: a worker thread
        data = transcript_json(session, ctx, me.id)
        end_request_transaction()
        return data

    if _wants_pdf(request):
        return await run_in_threadpool(printed)
    data = await run_in_threadpool(signed)
    return Response(data, media_type=_LD)


# -- the fast lane (node.fastlane): the two reads above in their plain case --------------------------------------

_LD_BYTES = _LD.encode()
# each with the learner's current token version: one query checks the token and reads the data
_ONE = PreparedRead(ONE_RECORD.add_columns(Learner.token_version.label("learner_token_version")))
_DEPOSITED = PreparedRead(DEPOSITED_RECORDS)
_HOLDER = PreparedRead(sa.select(Learner.pseudonym, Learner.name_cipher, Learner.key_id, Learner.token_version)
                       .where(Learner.id == sa.bindparam("learner_id")))
_RECORD = PreparedRead(ONE_RECORD).Row  # a record row as the route reads it (without the token version)


@fast_read("/api/v1/me/credentials/{achievement_id}", learner=True)
async def fast_credential(lane: Lane, _scope: dict, achievement_id: int, who: tuple[int, int]
                          ) -> tuple[bytes, bytes] | None:
    """`my_credential` when the learner's credential is signed and cached: one query, no signing, no write."""
    async with lane.reading() as r:
        rows = await r.rows(_ONE, {"achievement_id": achievement_id})
    if not rows or not current(who, rows[0][-1]):
        return None
    row = _RECORD._make(rows[0][:-1])
    if row.learner_id != who[0]:
        return None
    data = cached_credential(lane.ctx, row, rdfc=True)
    return None if data is None else (data, _LD_BYTES)


@fast_read("/api/v1/me/transcript", learner=True)
async def fast_transcript(lane: Lane, scope: dict, _param: None, who: tuple[int, int]
                          ) -> tuple[bytes, bytes] | None:
    """`my_transcript` (JSON) when the same presentation was signed within `node.transcript_reuse_seconds` from
    exactly the same records: two queries, no signing, no write."""
    accept = next((v for n, v in scope["headers"] if n == b"accept"), b"")
    if _accepts_pdf_first(accept.decode("latin-1")):
        return None
    async with lane.reading() as r:
        holder = await r.named(_HOLDER, {"learner_id": who[0]})
        if not holder or not current(who, holder[0].token_version):
            return None
        records = await r.named(_DEPOSITED, {"learner_id": who[0]})
    data = reused_transcript(lane.ctx, who[0], holder[0], records)
    return None if data is None else (data, _LD_BYTES)


@router.get("/api/v1/achievements/{achievement_id}/credential")
def staff_credential(achievement_id: Int64, ctx: CtxDep, session: SessionDep, staff: Staff) -> JSONResponse:
    """The signed credential of a deposited (or revoked) achievement, with `eddsa-jcs-2022` and
    `eddsa-rdfc-2022` proofs. Audited as `credential.export`."""
    record(session, actor=staff, action="credential.export", target_type="achievement", target_id=achievement_id)
    return Response(achievement_credential_json(session, ctx, achievement_id, rdfc=True), media_type=_LD)


# -- ledger log -----------------------------------------------------------------------------------


@router.get("/api/v1/ledger/checkpoint", dependencies=Public, response_class=PlainTextResponse)
def checkpoint(ctx: CtxDep, session: SessionDep) -> PlainTextResponse:
    """The latest checkpoint as a C2SP signed note (text/plain), with the witnesses' cosignatures collected
    for it appended (docs/ledger.md, Witnessing)."""
    return PlainTextResponse(served_note(session, latest_checkpoint(session, ctx)))


@router.get("/api/v1/ledger/proof/inclusion", dependencies=Public)
def inclusion_proof(session: SessionDep, seq: Int64, size: Int64 | None = None) -> dict:
    """A Merkle inclusion proof of ledger event `seq` in the tree of `size` (default: the current
    size), with the leaf and root hashes; 400 unless 0 <= seq < size <= the ledger's size."""
    return inclusion(session, seq=seq, size=size)


@router.get("/api/v1/ledger/proof/consistency", dependencies=Public)
def consistency_proof(session: SessionDep, first: Int64, second: Int64) -> dict:
    """A Merkle consistency proof between the ledger's trees of sizes `first` and `second`, with
    both roots; 400 unless 0 < first <= second <= the ledger's size."""
    return consistency(session, first=first, second=second)


@router.get("/api/v1/ledger/events/{seq}", dependencies=Public)
def ledger_leaf(seq: Int64, session: SessionDep) -> dict:
    """An event's published leaf: nothing in it identifies a person or links two events of one (an event about
    a learner shows only its kind, time and a salted commitment; docs/ledger.md, threat model)."""
    return public_view(event_by_seq(session, seq))


# -- status and revocation -----------------------------------------------------------------------


@router.get("/status/{list_no}", dependencies=Public)
def status_list(list_no: Int64, ctx: CtxDep, session: SessionDep) -> JSONResponse:
    """Status list `list_no`: a signed `BitstringStatusListCredential` whose set bits are the revoked
    credentials (revocation purpose)."""
    return JSONResponse(status_list_credential(session, ctx, list_no), media_type=_LD)


class RevocationCreate(BaseModel):
    reason: str = Field(min_length=1, max_length=1000)


class RevocationDecision(BaseModel):
    approve: bool
    reason: str | None = Field(default=None, max_length=1000)


@router.post("/api/v1/achievements/{achievement_id}/revocations", status_code=201)
def ask_revocation(achievement_id: Int64, body: RevocationCreate, session: SessionDep, staff: CentreReviewer) -> dict:
    """Ask to revoke a deposited achievement, with a reason; another centre reviewer decides.
    Refused if one is already awaiting review. Audited as `revocation.request`."""
    req = request_revocation(session, achievement_id=achievement_id, reason=body.reason, staff_id=staff.id)
    record(session, actor=staff, action="revocation.request", target_type="achievement", target_id=achievement_id,
           detail={"request": req.id})
    return {"id": req.id, "state": req.state, "achievement_id": achievement_id}


@router.post("/api/v1/revocations/{request_id}/decision")
def decide(request_id: Int64, body: RevocationDecision, session: SessionDep, ctx: CtxDep,
           staff: CentreReviewer) -> dict:
    """Approve or reject a revocation request (not one's own); approving flips the achievement's status
    bit and appends `achievement.revoked` to the ledger. Audited as `revocation.decide`."""
    req = decide_revocation(session, ctx, request_id=request_id, approve=body.approve, reason=body.reason,
                            staff_id=staff.id)
    record(session, actor=staff, action="revocation.decide", target_type="revocation", target_id=request_id,
           detail={"state": req.state, "achievement": req.achievement_id})
    return {"id": req.id, "state": req.state, "achievement_id": req.achievement_id}


# -- verification (no account; rate-limited) ------------------------------------------------------


_verify_limit = per_client_limit("verify", lambda s: f"{s.security.verify_rate_limit_per_minute}/minute")


def verify_rate(request: Request) -> None:
    """The one rate limit of public verification (the API and the page), checked before the body is read:
    per client, proxy headers believed only from `ratelimit.forwarded_allow_ips` (node.security.ratelimit)."""
    _verify_limit(request)


RateLimited = Depends(verify_rate)
_JSON_TYPES = ("application/json", "application/ld+json", "application/vc+ld+json", "application/vp+ld+json")
MAX_SUBMISSION_BYTES = MAX_PDF_BYTES + 64 * 1024  # the edge's limit for these routes too (node.middleware)


async def _read_capped(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise PayloadTooLarge(f"the body is over {limit} bytes", detail={"max_bytes": limit})
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is over {limit} bytes", detail={"max_bytes": limit})
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body  # Starlette's cache: request.form() parses these bytes, not the spent stream
    return body


def _parse_json(data: bytes) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadRequest("the document is not JSON", code="invalid_document") from None


def _parse_file(data: bytes) -> Any:
    if data.startswith(b"%PDF-"):
        try:
            return extract_presentation(data)
        except PdfUnreadable as exc:
            raise BadRequest(str(exc), code="unreadable_pdf") from None
    return _parse_json(data)


async def submitted_document(request: Request) -> Any:
    """The document to verify, from a JSON body, a PDF body (`application/pdf`: the transcript's embedded
    presentation) or a form (`multipart/form-data` or urlencoded: a `file` — PDF or JSON — or a pasted
    `document`). Bounded: 413 over `MAX_SUBMISSION_BYTES`; parsing runs off the event loop."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    body = await _read_capped(request, MAX_SUBMISSION_BYTES)
    if media in _JSON_TYPES or media.endswith("+json") or not media:
        return await run_in_threadpool(_parse_json, body)
    if media == "application/pdf":
        return await run_in_threadpool(_parse_file, body) if body.startswith(b"%PDF-") else _raise_unreadable()
    if media in ("multipart/form-data", "application/x-www-form-urlencoded"):
        try:
            form = await request.form(max_files=1, max_fields=4, max_part_size=MAX_SUBMISSION_BYTES)
        except Exception:  # noqa: BLE001 - any malformed form is the sender's error
            raise BadRequest("the form cannot be read", code="invalid_document") from None
        try:
            upload = form.get("file")
            data = await upload.read() if upload is not None and not isinstance(upload, str) else b""
        finally:
            await form.close()
        if data:
            return await run_in_threadpool(_parse_file, data)
        pasted = form.get("document")
        if isinstance(pasted, str) and pasted.strip():
            return await run_in_threadpool(_parse_json, pasted.encode("utf-8"))
        raise BadRequest("the form has neither a file nor a document", code="invalid_document")
    raise UnsupportedMediaType(f"cannot verify {media}: send JSON, a PDF or a form",
                               detail={"accepted": [*_JSON_TYPES, "application/pdf", "multipart/form-data"]})


def _raise_unreadable() -> None:
    raise BadRequest("not a PDF file", code="unreadable_pdf")


Submitted = Annotated[Any, Depends(submitted_document)]
_VERIFY_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"type": "object", "description": "a credential or presentation"}},
    "application/pdf": {"schema": {"type": "string", "format": "binary",
                                   "description": "a transcript PDF (its embedded transcript.jsonld)"}},
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "file": {"type": "string", "format": "binary"}, "document": {"type": "string"}}}},
}}}


def _verify(session, ctx, document: Any) -> Report:
    from node.credentials.resolvers import local_resolvers

    return verify_document(document, **local_resolvers(session, ctx))


@router.post("/api/v1/verify", dependencies=[*Public, RateLimited], openapi_extra=_VERIFY_BODY)
def verify(ctx: CtxDep, session: SessionDep, document: Submitted) -> dict:
    """Check a credential or transcript — JSON, or a transcript PDF — signatures (every proof of the set), issuer
    key (this node or any member), status, dates, inclusion in the issuer's log."""
    return _verify(session, ctx, document).to_dict()


# -- the public verification page (HTML, no JavaScript) -------------------------------------------------------

def _page(request: Request, lang: str, *, view: dict | None = None, error: str | None = None,
          status: int = 200) -> HTMLResponse:
    """The page in the portal's layout (node/portal/templates/verify.html); its texts stay in
    node.credentials.messages, shared with the printed transcript."""
    from node.portal.web import render

    request.state.portal_lang = lang
    return render(request, "verify.html", status=status, page_title=text(lang, "verify.title"),
                  vt=lambda key: text(lang, key), view=view, error=error,
                  kinds={k: v[0 if lang == "zh" else 1] for k, v in KINDS.items()})


def _lang(request: Request, lang: str | None) -> str:
    return pick_language(lang, request.headers.get("accept-language"))


@router.get("/verify", dependencies=Public, response_class=HTMLResponse)
def verify_page(request: Request, lang: str | None = None) -> HTMLResponse:
    """The public verification page: paste a credential, upload a transcript PDF (Chinese; `?lang=en` or
    Accept-Language for English)."""
    return _page(request, _lang(request, lang))


@router.get("/verify/{token}", dependencies=[*Public, RateLimited], response_class=HTMLResponse)
def verify_printed(token: str, request: Request, ctx: CtxDep, session: SessionDep,
                   lang: str | None = None) -> HTMLResponse:
    """Where a printed transcript's QR code and short URL lead: its signed presentation, verified now."""
    language = _lang(request, lang)
    row = issued_transcript(session, token)
    if row is None:
        return _page(request, language, error=text(language, "verify.not_found"), status=404)
    from node.credentials.resolvers import issuer_names

    view = person_view(row.document, _verify(session, ctx, row.document), issuers=issuer_names(session, ctx))
    return _page(request, language, view=view)


@router.post("/verify", dependencies=[*Public, RateLimited], response_class=HTMLResponse,
             openapi_extra={"requestBody": {"required": True, "content": {
                 "multipart/form-data": _VERIFY_BODY["requestBody"]["content"]["multipart/form-data"]}}})
async def verify_page_submit(request: Request, ctx: CtxDep, lang: str | None = None) -> HTMLResponse:
    """The page's form: verify what was pasted or uploaded and show the result for a person."""
    language = _lang(request, lang)
    try:
        document = await submitted_document(request)
    except (BadRequest, UnsupportedMediaType) as exc:
        detail = f": {exc.message}" if language == "en" else ""  # the API's messages are English
        return _page(request, language, error=text(language, "verify.bad_input") + detail, status=400)

    def check() -> dict:
        from node.credentials.resolvers import issuer_names
        from node.db import session_scope

        with session_scope(ctx.engine) as session:
            return person_view(document, _verify(session, ctx, document), issuers=issuer_names(session, ctx))

    return _page(request, language, view=await run_in_threadpool(check))
