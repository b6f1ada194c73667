"""The federation's membership pages for federation administrators: the members, every installed version with
who signed it, and the proposals of the next version — propose one (the next version's document, prefilled from
the held one: members, threshold, an admission or a removal), sign it with this node's key, download it to
collect the other members' proofs, add proofs collected elsewhere (proposing the same document again merges
them), and install it once enough members have signed.

Every action is the admin API's own route function (federation.router: post_proposal, sign_proposal, install —
audited there as `federation.membership.<verb>`; install audits its own refusals); a refusal the API leaves to
its error handler is rolled back and audited here with its code. A proposal's state is the API's check
(`federation.membership.check_membership`, as `GET …/proposals/{hash}` shows it). The API has no way to reject
or withdraw a proposal: a proposal nobody signs is dropped when another version is installed."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Path, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from federation import router as api
from federation.membership import (
    check_membership,
    held_membership,
    membership_hash,
    next_version,
    unsecured,
)
from federation.runtime import runtime
from federation.service import membership_version
from node.deps import CtxDep, Principal, SessionDep, public
from node.errors import NodeError
from node.portal.agreements import ADMIN, audit_refusal, error_key
from node.portal.i18n import translator
from node.portal.web import PageRefused, check_csrf, page_principal, redirect, render

__all__ = ["proposal_changes", "router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(public)])
Digest = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")]
MAX_DOCUMENT_BYTES = 256 * 1024


def _admin(request: Request, session: Any) -> Principal:
    principal = page_principal(request, session, roles=ADMIN)
    assert principal is not None
    return principal


def _signers(document: dict, members: list[dict]) -> list[dict]:
    """Who signed a membership version: each proof's key, named by the member whose DID it belongs to."""
    by_did = {m.get("did"): m for m in members}
    proofs = document.get("proof") or []
    out = []
    for p in proofs if isinstance(proofs, list) else [proofs]:
        if not isinstance(p, dict):
            continue
        did = str(p.get("verificationMethod", "")).split("#", 1)[0]
        member = by_did.get(did) or {}
        out.append({"node_id": member.get("node_id", "?"), "name_zh": member.get("name_zh", ""),
                    "name_en": member.get("name_en", ""), "key": p.get("verificationMethod", ""),
                    "created": p.get("created", "")})
    return out


def proposal_changes(held: dict | None, proposed: dict) -> dict:
    """What a proposal changes in the held version: members added and removed (by node id), the threshold
    (old, new), and the other top-level fields that differ (names only)."""
    old = unsecured(held or {})
    new = unsecured(proposed)
    old_members = {m.get("node_id"): m for m in old.get("members") or [] if isinstance(m, dict)}
    new_members = {m.get("node_id"): m for m in new.get("members") or [] if isinstance(m, dict)}
    skip = {"members", "threshold", "version", "previous"}
    return {
        "added": [new_members[n] for n in new_members if n not in old_members],
        "removed": [old_members[n] for n in old_members if n not in new_members],
        "changed_members": [n for n in new_members if n in old_members and new_members[n] != old_members[n]],
        "threshold": (old.get("threshold"), new.get("threshold")),
        "fields": sorted(k for k in set(old) | set(new) if k not in skip and old.get(k) != new.get(k)),
    }


def _membership(request: Request, session: Any, ctx: Any, me: Principal, *, errors: dict | None = None,
                status: int = 200) -> HTMLResponse:
    held = held_membership(session)
    versions = []
    if held is not None:
        previous_members: list[dict] = []
        for number in range(1, held.version + 1):
            document = membership_version(session, number)
            if document is None:  # joined the federation at a later version: earlier ones are not held here
                continue
            members = list(document.get("members") or [])
            # a version is signed by members of the version before it (the genesis: by its own members)
            signers = _signers(document, previous_members or members)
            versions.append({"version": number, "hash": membership_hash(document), "previous": document.get("previous"),
                             "threshold": document.get("threshold"), "members": members, "signers": signers})
            previous_members = members
        versions.reverse()
    held_document = held.document if held else None
    resolve = runtime(ctx).directory.resolver(session)
    proposals = api.list_proposals(ctx=ctx, session=session, admin=me)
    for proposal in proposals:
        proposal["signers"] = _signers(proposal["document"], list((held_document or {}).get("members") or []))
        proposal["check"] = check_membership(proposal["document"], held=held_document, resolve_did=resolve).to_dict()
        proposal["changes"] = proposal_changes(held_document, proposal["document"])
        proposal["signed_here"] = ctx.node_id in proposal["check"]["signers"]
        for refusal in proposal["check"]["refusals"]:  # the page's text of each reason, where it has one
            key = f"fed.err.{refusal['code']}"
            refusal["key"] = key if translator("zh").has(key) else None
    return render(request, "federation/membership.html", status=status, title="fed.membership.title", held=held,
                  members=(held.document.get("members") or []) if held else [], versions=versions,
                  proposals=proposals, this_node=ctx.node_id, errors=errors or {},
                  done=request.query_params.get("done", ""))


@router.get("/federation/membership", response_class=HTMLResponse)
def membership_page(request: Request, session: SessionDep, ctx: CtxDep) -> HTMLResponse:
    me = _admin(request, session)
    return _membership(request, session, ctx, me)


def _proposal_or_404(session: Any, ctx: Any, me: Principal, digest: str) -> dict:
    found = next((p for p in api.list_proposals(ctx=ctx, session=session, admin=me) if p["hash"] == digest), None)
    if found is None:
        raise PageRefused(404, "fed.err.proposal_not_found")
    return found


@router.get("/federation/membership/proposals/{digest}.json")
def proposal_document(digest: Digest, request: Request, session: SessionDep, ctx: CtxDep) -> Response:
    """A proposal with the proofs collected here, to hand to the other members (they propose it to their node,
    which merges proofs of the same hash, and sign it there)."""
    me = _admin(request, session)
    found = _proposal_or_404(session, ctx, me, digest)
    body = json.dumps(found["document"], ensure_ascii=False, indent=2, sort_keys=True)
    return Response(body, media_type="application/json", headers={
        "Content-Disposition": f'attachment; filename="membership-v{found["version"]}-{digest[:12]}.json"',
        "Cache-Control": "no-store"})


# -- propose ------------------------------------------------------------------------------------------------


def _propose_form(request: Request, *, text: str, errors: dict[str, str], reasons: list[dict] | None = None,
                  status: int = 200) -> HTMLResponse:
    return render(request, "federation/membership_propose.html", status=status, title="fed.mprop.title",
                  text=text, errors=errors, reasons=reasons or [])


@router.get("/federation/membership/propose", response_class=HTMLResponse)
def propose_page(request: Request, session: SessionDep) -> HTMLResponse:
    """The form, prefilled with the next version of the held one (version + 1, chained by hash, no proofs)."""
    _admin(request, session)
    held = held_membership(session)
    if held is None:
        raise PageRefused(409, "fed.err.no_membership")
    text = json.dumps(next_version(held.document), ensure_ascii=False, indent=2)
    return _propose_form(request, text=text, errors={})


@router.post("/federation/membership/propose", response_class=HTMLResponse)
def propose_submit(request: Request, session: SessionDep, ctx: CtxDep, document: Annotated[str, Form()] = "",
                   csrf: Annotated[str, Form()] = "",
                   file: Annotated[UploadFile | None, File()] = None) -> Response:
    """The document typed in, or an uploaded .json (a proposal with other members' proofs: merged)."""
    check_csrf(request, {"csrf": csrf})
    me = _admin(request, session)
    field, text = "document", document
    if file is not None and file.filename:
        field = "file"
        raw = file.file.read(MAX_DOCUMENT_BYTES + 1)
        if len(raw) > MAX_DOCUMENT_BYTES:
            return _propose_form(request, text=document, errors={"file": "fed.err.document_too_large"}, status=413)
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            return _propose_form(request, text=document, errors={"file": "fed.err.document_json"}, status=400)
    shown = text if field == "document" else document
    if not text.strip():
        return _propose_form(request, text=shown, errors={field: "fed.err.document_missing"}, status=400)
    if len(text.encode("utf-8")) > MAX_DOCUMENT_BYTES:
        return _propose_form(request, text=shown[:MAX_DOCUMENT_BYTES], errors={field: "fed.err.document_too_large"},
                             status=413)
    try:
        parsed = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return _propose_form(request, text=shown, errors={field: "fed.err.document_json"}, status=400)
    if not isinstance(parsed, dict):
        return _propose_form(request, text=shown, errors={field: "fed.err.document_json"}, status=400)
    try:
        view = api.post_proposal(ctx=ctx, session=session, admin=me, document=parsed)
    except NodeError as exc:  # refused before anything was stored: audited here, like the API's other refusals
        audit_refusal(session, me, "federation.membership.propose", None, exc, target_type="membership")
        reasons = [r for r in (exc.detail or {}).get("reasons", []) if isinstance(r, dict)][:20]
        return _propose_form(request, text=shown, errors={field: error_key(exc)}, reasons=reasons,
                             status=exc.status_code)
    except (ValueError, TypeError, RecursionError):  # a document the canonical form cannot write
        return _propose_form(request, text=shown, errors={field: "fed.err.document_json"}, status=400)
    return redirect(request, f"/federation/membership?done=propose#proposal-{view['hash'][:16]}")


# -- sign, install -------------------------------------------------------------------------------------------


@router.post("/federation/membership/proposals/{digest}/sign", response_class=HTMLResponse)
def sign_submit(digest: Digest, request: Request, session: SessionDep, ctx: CtxDep,
                csrf: Annotated[str, Form()] = "") -> Response:
    check_csrf(request, {"csrf": csrf})
    me = _admin(request, session)
    try:
        api.sign_proposal(digest=digest, ctx=ctx, session=session, admin=me)
    except NodeError as exc:
        audit_refusal(session, me, "federation.membership.sign", digest, exc, target_type="membership")
        return _membership(request, session, ctx, me, errors={"": error_key(exc)}, status=exc.status_code)
    return redirect(request, f"/federation/membership?done=sign#proposal-{digest[:16]}")


@router.post("/federation/membership/proposals/{digest}/install", response_class=HTMLResponse)
def install_submit(digest: Digest, request: Request, session: SessionDep, ctx: CtxDep,
                   csrf: Annotated[str, Form()] = "") -> Response:
    """Install the proposal as the held version (the API checks it again, audits it, announces it)."""
    check_csrf(request, {"csrf": csrf})
    me = _admin(request, session)
    try:
        api.install(ctx=ctx, session=session, admin=me, request=api.InstallRequest(hash=digest))
    except NodeError as exc:  # a refused document is audited by the API itself; an unknown hash here
        if exc.status_code == 404:
            audit_refusal(session, me, "federation.membership.install", digest, exc, target_type="membership")
        else:
            session.rollback()
        return _membership(request, session, ctx, me, errors={"": error_key(exc)}, status=exc.status_code)
    return redirect(request, "/federation/membership?done=install")
