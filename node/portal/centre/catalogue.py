"""The centre's catalogue pages: programmes (with their courses) and certificates — list, create, edit (a new
version from a day on), retire (the newest version ends on a day) — for standards admins.

Every write is the API's own route function (node.standards.router.put_entry / end_entry): the item shapes, the
version order and the audit entries (`standards.catalogue.put` / `.end`, refusals too) are the API's. A refusal
of the shape (`catalogue_invalid`) is placed next to its field by validating the same data with the API's own
item shape (node.standards.service.KINDS), so the page never restates a rule of its own; the page's checks are
only those that precede the API (a date that is not a date, a text over 200 characters, a new code that is not
a plain path segment or is already taken, no change at all). Form parsing and field mapping are pure functions (tests call them)."""

from __future__ import annotations

import datetime as dt
import re
import typing
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlmodel import Session

from node.deposits.schemas import ACHIEVEMENT_TYPES, CERTIFICATE_TYPES
from node.deps import Principal, SessionDep, public
from node.errors import NodeError, NotFound
from node.portal.centre.common import error_key, page, staff_page
from node.portal.web import PageRefused, check_csrf, redirect
from node.roles import Role
from node.standards import router as api
from node.standards.service import KINDS, CertificateItem, entries_in_force, validate_item

__all__ = ["CatalogueForm", "certificate_levels", "field_errors", "parse_certificate", "parse_programme", "router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(public)])
ADMIN = frozenset({Role.STANDARDS_ADMIN})
# the two kinds a person edits through pages (URL segment → catalogue kind); the others stay API-only
PAGE_KINDS = {"programmes": "programme", "certificates": "certificate"}
Segment = Annotated[str, Path(pattern=r"^(programmes|certificates)$")]
CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"  # a plain path segment, so every entry made here opens here
Code = Annotated[str, Path(min_length=1, max_length=64, pattern=CODE_PATTERN)]
MAX_TEXT = 200  # any one field of the form
MAX_COURSES = 120
BLANK_COURSES = 3
COURSE_FIELDS = ("code", "name_zh", "credits", "hours", "category", "level")


def certificate_levels() -> tuple[str, ...]:
    """The levels a certificate may list, read from the API's own item shape (a Literal)."""
    annotation = CertificateItem.model_fields["levels"].annotation
    (inner,) = typing.get_args(annotation)
    return tuple(typing.get_args(inner))


@dataclass
class CatalogueForm:
    """What the person typed (strings), the course rows (programmes), the errors keyed by field name."""

    values: dict[str, Any]
    courses: list[dict[str, Any]] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    rows: list[int] = field(default_factory=list)  # the form row of each course sent (for placing errors)


def _text(form: Any, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _long_fields(values: dict[str, Any], errors: dict[str, str], prefix: str = "") -> None:
    for name, value in values.items():
        if isinstance(value, str) and len(value) > MAX_TEXT:
            errors.setdefault(f"{prefix}{name}", "cat.err.too_long")


MAX_WHOLE = 100_000  # hours of a course, years of validity: the API's shapes set no upper bound (see docs)


def _whole_number_bound(values: dict[str, Any], names: tuple[str, ...], errors: dict[str, str],
                        prefix: str = "") -> None:
    """A whole number typed with more digits than any course's hours could need is refused here: the API's shape
    would store it, and an integer past 2**53 cannot be signed in RFC 8785 JSON."""
    for name in names:
        text = values.get(name)
        if isinstance(text, str) and text.isdigit() and int(text[:12]) >= MAX_WHOLE:
            errors.setdefault(f"{prefix}{name}", "cat.err.too_large")


def _date(text: str, name: str, errors: dict[str, str]) -> dt.date | None:
    if not text:
        errors[name] = "cat.err.date_missing"
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        errors[name] = "cat.err.date"
        return None


def _or_none(text: str) -> str | None:
    return text or None


def parse_programme(form: Any, *, previous: dict | None) -> tuple[CatalogueForm, dict]:
    """(the form, the entry's data). Keys of the previous version the form does not show (e.g. `illustrative`,
    on the programme or on a course of the same code) are kept."""
    values = {name: _text(form, name) for name in ("code", "name_zh", "institution_code", "level",
                                                     "graduation_credits", "effective_from")}
    errors: dict[str, str] = {}
    _long_fields(values, errors)
    courses: list[dict[str, Any]] = []
    for i in range(MAX_COURSES):
        if f"c{i}_code" not in form:
            break
        row = {f: _text(form, f"c{i}_{f}") for f in COURSE_FIELDS}
        row["never_exempt"] = form.get(f"c{i}_never_exempt") == "yes"
        courses.append(row)
    old_courses = {c.get("code"): c for c in (previous or {}).get("courses") or [] if isinstance(c, dict)}
    data = {k: v for k, v in (previous or {}).items() if k != "courses"}
    data.update(code=values["code"], name_zh=values["name_zh"], institution_code=values["institution_code"],
                level=values["level"], graduation_credits=values["graduation_credits"])
    sent: list[dict] = []
    rows: list[int] = []
    for i, row in enumerate(courses):
        if not any(row[f] for f in COURSE_FIELDS):
            continue  # an empty row
        _long_fields({f: row[f] for f in COURSE_FIELDS}, errors, prefix=f"c{i}_")
        _whole_number_bound(row, ("hours",), errors, prefix=f"c{i}_")
        course = dict(old_courses.get(row["code"]) or {})
        course.update(code=row["code"], name_zh=row["name_zh"], credits=row["credits"],
                      hours=_or_none(row["hours"]), category=_or_none(row["category"]),
                      level=_or_none(row["level"]), never_exempt=row["never_exempt"])
        sent.append(course)
        rows.append(i)
    data["courses"] = sent
    _date(values["effective_from"], "effective_from", errors)
    return CatalogueForm(values, courses, errors, rows), data


def parse_certificate(form: Any, *, previous: dict | None) -> tuple[CatalogueForm, dict]:
    """(the form, the entry's data); keys of the previous version the form does not show are kept."""
    values: dict[str, Any] = {name: _text(form, name) for name in (
        "code", "name_zh", "type", "issuer_code", "issuer_name_zh", "validity_years", "effective_from")}
    errors: dict[str, str] = {}
    _long_fields(values, errors)
    _whole_number_bound(values, ("validity_years",), errors)
    levels = [str(v)[:20] for v in form.getlist("levels")][:20] if hasattr(form, "getlist") else []
    values["levels"] = levels
    data = dict(previous or {})
    data.update(code=values["code"], name_zh=values["name_zh"], type=values["type"], levels=levels,
                issuer_code=_or_none(values["issuer_code"]), issuer_name_zh=_or_none(values["issuer_name_zh"]),
                validity_years=_or_none(values["validity_years"]))
    _date(values["effective_from"], "effective_from", errors)
    return CatalogueForm(values, [], errors), data


_ERROR_KEYS = {
    "string_too_short": "cat.err.required", "missing": "cat.err.required", "string_too_long": "cat.err.too_long",
    "int_parsing": "cat.err.whole_number", "int_from_float": "cat.err.whole_number",
    "greater_than_equal": "cat.err.whole_number", "literal_error": "cat.err.choice",
    "value_error": "cat.err.decimal", "string_type": "cat.err.required",
}


def field_errors(kind: str, data: dict, rows: list[int]) -> dict[str, str]:
    """The API's item shape applied to `data`, its complaints as {form field: message key}; a programme naming
    one course code twice is marked on the second row. Empty when the shape accepts the data."""
    shape, _ = KINDS[kind]
    errors: dict[str, str] = {}
    try:
        shape.model_validate(data)
    except ValidationError as exc:
        for e in exc.errors():
            loc = e["loc"]
            if loc[:1] == ("courses",) and len(loc) >= 3 and isinstance(loc[1], int) and loc[1] < len(rows):
                name = f"c{rows[loc[1]]}_{loc[2]}"
            else:
                name = str(loc[0]) if loc else ""
            errors.setdefault(name, _ERROR_KEYS.get(e["type"], "cat.err.invalid"))
        return errors
    if kind == "programme":
        seen: set[str] = set()
        for i, course in enumerate(data.get("courses") or []):
            if course.get("code") in seen:
                errors.setdefault(f"c{rows[i]}_code", "cat.err.course_twice")
            seen.add(course.get("code"))
    return errors


# -- pages ----------------------------------------------------------------------------------------------------


def _state(entry: Any, today: dt.date) -> str:
    if entry.effective_from > today:
        return "scheduled"
    if entry.effective_to is not None and entry.effective_to < today:
        return "ended"
    return "in_force"


def _admin(request: Request, session: Session) -> Principal:
    return staff_page(request, session, ADMIN)


async def _posted(request: Request, session: Session) -> tuple[Any, Principal]:
    """A posted catalogue form, its CSRF token checked, and the standards admin posting it."""
    form = await request.form()
    check_csrf(request, form)
    return form, _admin(request, session)


@router.get("/centre/catalogue", response_class=HTMLResponse)
def catalogue_page(request: Request, session: SessionDep, kind: str = "programmes", q: str = "") -> HTMLResponse:
    """The programmes or the certificates (the newest version of each), searchable by code or name."""
    me = _admin(request, session)
    segment = kind if kind in PAGE_KINDS else "programmes"
    query = q.strip()[:100]
    today = dt.date.today()
    newest = api.list_entries(segment=segment, session=session, _=me)
    current = {e.code: e for e in api.list_entries(segment=segment, session=session, _=me, on=today)}
    if query:
        folded = query.casefold()
        newest = [e for e in newest if folded in e.code.casefold() or folded in str(e.data.get("name_zh", ""))
                  .casefold()]
    # each entry as it stands today (the version in force, else the newest), with a later version if one waits
    rows = []
    for entry in newest:
        shown = current.get(entry.code, entry)
        rows.append((shown, _state(shown, today), entry if entry.version != shown.version else None))
    return page(request, "centre/catalogue.html", me, title="cat.title", segment=segment, q=query, entries=rows,
                done=request.query_params.get("done", ""), types_known=ACHIEVEMENT_TYPES)


def _institutions(session: Session) -> list[tuple[str, str]]:
    return [(e.code, str(e.data.get("name_zh", ""))) for e in entries_in_force(session, "institution")]


def _blank_course() -> dict[str, Any]:
    return {**{f: "" for f in COURSE_FIELDS}, "never_exempt": False}


def _form_values(kind: str, data: dict, effective_from: str) -> CatalogueForm:
    """The form prefilled from a version's data (the edit form) or empty (the new form)."""
    if kind == "programme":
        values = {k: str(data.get(k) or "") for k in ("code", "name_zh", "institution_code", "level",
                                                       "graduation_credits")}
        courses = [{**{f: "" if c.get(f) is None else str(c.get(f)) for f in COURSE_FIELDS},
                    "never_exempt": bool(c.get("never_exempt"))} for c in data.get("courses") or []]
        courses += [_blank_course() for _ in range(BLANK_COURSES)]
    else:
        values = {k: "" if data.get(k) is None else str(data.get(k)) for k in (
            "code", "name_zh", "type", "issuer_code", "issuer_name_zh", "validity_years")}
        values["type"] = values["type"] or "vocational_qualification"
        values["levels"] = list(data.get("levels") or [])
        courses = []
    values["effective_from"] = effective_from
    return CatalogueForm(values, courses, {})


def _entry_form(request: Request, session: Session, me: Principal, segment: str, form: CatalogueForm, *,
                code: str | None, status: int = 200, retire: dict | None = None) -> HTMLResponse:
    kind = PAGE_KINDS[segment]
    versions = api.entry_versions(segment=segment, code=code, session=session, _=me) if code else []
    if form.courses is not None and kind == "programme" and not any(
            not any(c[f] for f in COURSE_FIELDS) for c in form.courses):
        form.courses = form.courses + [_blank_course()]  # always one empty row to add a course
    latest = versions[-1] if versions else None
    today = dt.date.today()
    current = next((v for v in reversed(versions) if _state(v, today) == "in_force"), None)
    types = sorted(CERTIFICATE_TYPES | ({form.values.get("type")} if form.values.get("type") else set()))
    return page(request, "centre/catalogue_entry.html", me, status=status,
                title="cat.edit_title" if code else "cat.new_title", page_title=code or "", segment=segment,
                kind=kind, code=code, form=form, versions=versions, latest=latest, current=current,
                state=_state(latest, today) if latest else "", institutions=_institutions(session),
                levels=certificate_levels(), types=types, types_known=ACHIEVEMENT_TYPES, retire=retire or {"effective_to": dt.date.today()
                                                                             .isoformat(), "errors": {}},
                done=request.query_params.get("done", ""))


def _next_start(latest: Any) -> str:
    """The earliest day a new version may start (after the newest version's start), or today if later."""
    today = dt.date.today()
    return max(today, latest.effective_from + dt.timedelta(days=1)).isoformat() if latest else today.isoformat()


@router.get("/centre/catalogue/{segment}/new", response_class=HTMLResponse)
def new_page(segment: Segment, request: Request, session: SessionDep) -> HTMLResponse:
    me = _admin(request, session)
    form = _form_values(PAGE_KINDS[segment], {}, dt.date.today().isoformat())
    return _entry_form(request, session, me, segment, form, code=None)


@router.get("/centre/catalogue/{segment}/{code}", response_class=HTMLResponse)
def entry_page(segment: Segment, code: Code, request: Request, session: SessionDep) -> HTMLResponse:
    """The newest version as a form (saving it makes the next version), the versions, retiring."""
    me = _admin(request, session)
    try:
        latest = api.entry_versions(segment=segment, code=code, session=session, _=me)[-1]
    except NotFound:
        raise PageRefused(404, "cat.err.not_found") from None
    form = _form_values(PAGE_KINDS[segment], latest.data, _next_start(latest))
    return _entry_form(request, session, me, segment, form, code=code)


def _save(request: Request, session: Session, me: Principal, segment: str, form_data: Any,
          code: str | None) -> Response:
    kind = PAGE_KINDS[segment]
    latest = None
    if code is not None:
        try:
            latest = api.entry_versions(segment=segment, code=code, session=session, _=me)[-1]
        except NotFound:
            raise PageRefused(404, "cat.err.not_found") from None
    parse = parse_programme if kind == "programme" else parse_certificate
    form, data = parse(form_data, previous=latest.data if latest else None)
    if code is not None:  # the code of an entry does not change: a new code is a new entry
        form.values["code"] = data["code"] = code
    elif form.values["code"] and not re.match(CODE_PATTERN, form.values["code"]):
        form.errors["code"] = "cat.err.code_format"
    elif not form.errors.get("code") and form.values["code"]:
        try:
            api.read_entry(segment=segment, code=form.values["code"], session=session, _=me)
            form.errors["code"] = "cat.err.code_exists"
        except NotFound:
            pass
    if not form.errors and latest is not None:
        try:
            if validate_item(kind, data) == latest.data:
                form.errors[""] = "cat.err.no_changes"
        except NodeError:
            pass  # the API refuses it below (and audits the refusal)
    if form.errors:  # with whatever else the API's shape would say, so that every error shows at once
        form.errors = {**field_errors(kind, data, form.rows), **form.errors}
        return _entry_form(request, session, me, segment, form, code=code, status=400)
    body = api.EntryWrite(effective_from=dt.date.fromisoformat(form.values["effective_from"]), data=data)
    try:
        entry = api.put_entry(segment=segment, code=data["code"] or "-", body=body, session=session, admin=me)
    except NodeError as exc:  # refused: the API has audited it (refusals_recorded) and committed the entry
        if exc.code == "catalogue_invalid":
            form.errors = field_errors(kind, data, form.rows) or {"": error_key(exc)}
        elif exc.code == "catalogue_version_order":
            form.errors = {"effective_from": "cat.err.version_order"}
        else:
            form.errors = {"": error_key(exc)}
        return _entry_form(request, session, me, segment, form, code=code, status=exc.status_code)
    return redirect(request, f"/centre/catalogue/{segment}/{entry.code}?done={'edited' if code else 'created'}")


@router.post("/centre/catalogue/{segment}/new", response_class=HTMLResponse)
async def new_submit(segment: Segment, request: Request, session: SessionDep) -> Response:
    form, me = await _posted(request, session)
    return _save(request, session, me, segment, form, None)


@router.post("/centre/catalogue/{segment}/{code}", response_class=HTMLResponse)
async def edit_submit(segment: Segment, code: Code, request: Request, session: SessionDep) -> Response:
    form, me = await _posted(request, session)
    return _save(request, session, me, segment, form, code)


@router.post("/centre/catalogue/{segment}/{code}/end", response_class=HTMLResponse)
async def end_submit(segment: Segment, code: Code, request: Request, session: SessionDep) -> Response:
    """Retire the entry: its newest version ends on the day given (older versions stay readable)."""
    form, me = await _posted(request, session)
    try:
        latest = api.entry_versions(segment=segment, code=code, session=session, _=me)[-1]
    except NotFound:
        raise PageRefused(404, "cat.err.not_found") from None
    errors: dict[str, str] = {}
    text = _text(form, "effective_to")
    day = _date(text[:40], "effective_to", errors)
    retire = {"effective_to": text[:40], "errors": errors}
    edit = _form_values(PAGE_KINDS[segment], latest.data, _next_start(latest))
    if day is not None:
        try:
            api.end_entry(segment=segment, code=code, body=api.EntryEnd(effective_to=day), session=session,
                          admin=me)
        except NodeError as exc:  # audited by the API
            errors["effective_to"] = "cat.err.end_order" if exc.code == "catalogue_version_order" \
                else error_key(exc)
            return _entry_form(request, session, me, segment, edit, code=code, status=exc.status_code,
                               retire=retire)
        return redirect(request, f"/centre/catalogue/{segment}/{code}?done=retired")
    return _entry_form(request, session, me, segment, edit, code=code, status=400, retire=retire)
