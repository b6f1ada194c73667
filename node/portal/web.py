"""The portal's plumbing: templates, the page's language, the session cookie, CSRF, friendly error pages.

Session: the cookie `cn_session` holds the same signed bearer token the API issues (node.security.tokens), so a
page's principal is resolved by the API's own dependency (node.deps.lookup_principal, behind get_principal) and revoked the same way
(token_version: sign-out, password change, account disabled). HttpOnly, SameSite=Lax, Secure under https.

CSRF: every form carries `csrf`, an HMAC of a random per-browser nonce (cookie `cn_csrf`) and of the session
cookie; a POST whose field does not match is refused before anything is read (signed double submit, bound to
the session, so a token stops working on sign-out and sign-in).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlmodel import Session

from node.context import NodeContext
from node.deps import Principal, lookup_principal
from node.errors import NodeError
from node.portal.i18n import Translator, language_of, region_name, translator

__all__ = [
    "CSRF_COOKIE",
    "SESSION_COOKIE",
    "FormError",
    "PageRefused",
    "check_csrf",
    "display_name",
    "end_session",
    "is_page_request",
    "page_principal",
    "render",
    "render_error",
    "start_session",
]

log = logging.getLogger("creditnode")

SESSION_COOKIE = "cn_session"
CSRF_COOKIE = "cn_csrf"
LANG_COOKIE = "lang"
TEMPLATES = Path(__file__).parent / "templates"
# Stricter than the edge's default for HTML (node.middleware.HTML_CSP): the pages run no script at all. A page
# that needs a little JavaScript later adds "script-src 'self'" (files only; never 'unsafe-inline').
PAGE_CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; font-src 'self'; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'")

_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "svg"]),
                   trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.i18n"])


class PageRefused(Exception):
    """A page cannot be shown to this visitor: `status` 401 (sign in: the sign-in form is shown in its place),
    403 (signed in without the role), 400 (a form's CSRF token is missing or stale)."""

    def __init__(self, status: int, key: str) -> None:
        super().__init__(key)
        self.status = status
        self.key = key


class FormError(Exception):
    """A form's input is wrong: `errors` maps a field name (or "" for the whole form) to a message key."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(", ".join(errors))
        self.errors = errors


def _ctx(request: Request) -> NodeContext:
    return request.app.state.ctx


def _secure(request: Request) -> bool:
    return _ctx(request).settings.base_url.lower().startswith("https://")


def page_language(request: Request) -> str:
    if not hasattr(request.state, "portal_lang"):
        request.state.portal_lang = language_of(request.query_params.get("lang"), request.cookies.get(LANG_COOKIE),
                                                request.headers.get("accept-language"))
    return request.state.portal_lang


def _nonce(request: Request) -> str:
    nonce = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "portal_nonce", None)
    if not nonce or len(nonce) > 64:
        nonce = secrets.token_urlsafe(24)
        request.state.portal_new_nonce = nonce
    request.state.portal_nonce = nonce
    return nonce


def _session_value(request: Request) -> str:
    if hasattr(request.state, "portal_session"):  # set or cleared by this request
        return request.state.portal_session or ""
    return request.cookies.get(SESSION_COOKIE, "")


def csrf_token(request: Request) -> str:
    mac = hmac.new(_ctx(request).token_secret,
                   f"portal-csrf:{_nonce(request)}:{_session_value(request)}".encode(), hashlib.sha256)
    return mac.hexdigest()[:40]


def check_csrf(request: Request, form: Any) -> None:
    """Refuse a form post whose `csrf` field does not match this browser's nonce and session."""
    given = form.get("csrf") if form is not None else None
    nonce = request.cookies.get(CSRF_COOKIE)
    if not isinstance(given, str) or not nonce:
        raise PageRefused(400, "error.csrf")
    if not hmac.compare_digest(given, csrf_token(request)):
        raise PageRefused(400, "error.csrf")


def page_principal(request: Request, session: Session, *, roles: frozenset[str] | None = None,
                   required: bool = True) -> Principal | None:
    """The visitor's principal from the session cookie, through the API's own lookup (token version included);
    None (or 401) without a valid session; 403 (audited like the API's refusals) without one of `roles`."""
    token = request.cookies.get(SESSION_COOKIE)
    principal = None
    if token and len(token) < 4096:
        try:
            principal = lookup_principal(request, _ctx(request), session, token)
        except NodeError:
            principal = None
            request.state.portal_session = None  # stale (signed out elsewhere, expired): clear the cookie
    if principal is None:
        if required:
            raise PageRefused(401, "signin.required")
        return None
    request.state.portal_principal = principal
    if roles is not None and not principal.has_any(roles):
        from node.audit.service import record

        session.rollback()
        record(session, actor=principal, action=f"page.{request.method.lower()} {request.url.path}"[:60],
               outcome="denied", detail={"allowed_roles": sorted(roles)})
        session.commit()
        raise PageRefused(403, "error.forbidden")
    return principal


def display_name(session: Session, principal: Principal) -> str:
    """How to greet a staff member: their display name (node.models.StaffAccount), else the user name."""
    if principal.kind == "staff":
        from node.models import StaffAccount

        staff = session.get(StaffAccount, principal.id)
        if staff is not None and (staff.display_name or "").strip():
            return staff.display_name.strip()
    return principal.name


def start_session(request: Request, token: str) -> None:
    request.state.portal_session = token


def end_session(request: Request) -> None:
    request.state.portal_session = None


def _apply_cookies(request: Request, response: Response) -> None:
    secure = _secure(request)
    new_nonce = getattr(request.state, "portal_new_nonce", None)
    if new_nonce:
        response.set_cookie(CSRF_COOKIE, new_nonce, httponly=True, secure=secure, samesite="lax", path="/")
    if hasattr(request.state, "portal_session"):
        if request.state.portal_session:
            response.set_cookie(SESSION_COOKIE, request.state.portal_session, httponly=True, secure=secure,
                                samesite="lax", path="/")
        elif SESSION_COOKIE in request.cookies:
            response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, secure=secure, samesite="lax")
    lang = request.query_params.get("lang")
    if lang in ("zh", "en") and request.cookies.get(LANG_COOKIE) != lang:
        response.set_cookie(LANG_COOKIE, lang, httponly=True, secure=secure, samesite="lax", path="/",
                            max_age=365 * 86400)


def _lang_url(request: Request, lang: str) -> str:
    query = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"] + [("lang", lang)]
    from urllib.parse import urlencode

    return f"{request.url.path}?{urlencode(query)}"


def render(request: Request, template: str, *, status: int = 200, title: str = "", page_title: str = "",
           **values: Any) -> HTMLResponse:
    """A page in the visitor's language, with the layout's header (region, language switch, sign-in state)."""
    lang = page_language(request)
    t: Translator = translator(lang)
    ctx = _ctx(request)
    region = ctx.settings.region
    principal = getattr(request.state, "portal_principal", None)
    env = _env.overlay()
    env.install_gettext_callables(t.gettext, t.ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.filters["region"] = lambda code: region_name(t, code)  # `{{ peer | region }}`: 上海 / Shanghai
    other = "en" if lang == "zh" else "zh"
    html = env.get_template(template).render(
        t=t, lang=lang, html_lang=t.html_lang, title=title, page_title=page_title, csrf=csrf_token(request), principal=principal,
        region_name=region.name_zh if lang == "zh" else region.name_en, path=request.url.path,
        other_lang=other, other_lang_url=_lang_url(request, other), **values)
    response = HTMLResponse(html, status_code=status, headers={
        "Content-Language": t.html_lang, "Cache-Control": "no-store", "Vary": "Cookie, Accept-Language",
        "Content-Security-Policy": PAGE_CSP})
    _apply_cookies(request, response)
    return response


def redirect(request: Request, url: str) -> RedirectResponse:
    response = RedirectResponse(url, status_code=303)
    _apply_cookies(request, response)
    return response


def safe_next(value: Any) -> str | None:
    """A local path to return to after signing in (never another site)."""
    if isinstance(value, str) and value.startswith("/") and not value.startswith("//") and "\\" not in value \
            and len(value) < 300 and "\n" not in value and "\r" not in value:
        return value
    return None


_STATUS_KEYS = {400: "error.bad_request", 401: "signin.required", 403: "error.forbidden", 404: "error.not_found",
                405: "error.bad_request", 413: "error.too_large", 422: "error.bad_request",
                429: "error.too_many", 500: "error.internal"}


def render_error(request: Request, status: int, key: str | None = None) -> HTMLResponse:
    """A friendly error page in the page's language: never a stack trace, never a message of the API's (English)."""
    t = translator(page_language(request))
    key = key if key and t.has(key) else _STATUS_KEYS.get(status, "error.internal")
    try:
        return render(request, "error.html", status=status, title=t(key), message_key=key, status_code=status)
    except Exception as exc:  # the error page itself failed: a plain page, still in the visitor's language
        log.error("portal error page failed: %s", type(exc).__name__)
        return HTMLResponse(f"<!doctype html><title>{status}</title><p>{t('error.internal')}</p>", status_code=status)


def node_error_key(exc: NodeError) -> str:
    return f"err.{exc.code}"


def is_page_request(request: Request) -> bool:
    """A request a person's browser made for a page: a portal route, or an unknown path asked for as HTML."""
    route = request.scope.get("route")
    endpoint = getattr(route, "endpoint", None)
    if endpoint is not None:
        return getattr(endpoint, "__module__", "").startswith("node.portal.")
    path = request.url.path
    if path.startswith(("/api/", "/federation/", "/.well-known/")):
        return False
    return "text/html" in request.headers.get("accept", "")
