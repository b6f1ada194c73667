"""`creditnode org|staff|apikeys|roles`: the operators' side of the admin API, run in this process.

Each command is one unit of work: the change and its audit entry (actor: the local OS user, `operator`) commit
together or not at all. Input is checked by the admin API's own schemas, so both accept the same things.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from sqlmodel import Session

from node.roles import ALL_STAFF_ROLES

__all__ = ["register"]

console = Console()
org_app = typer.Typer(help="Organisations: the centre, branches, outlets, institutions.", no_args_is_help=True)
staff_app = typer.Typer(help="Staff accounts and their roles.", no_args_is_help=True)
keys_app = typer.Typer(help="Institution API keys (bulk deposits by systems).", no_args_is_help=True)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="configuration file (default: $CREDITNODE_CONFIG)")
]
ROLE_HELP = ("one of " + ", ".join(sorted(ALL_STAFF_ROLES)) + " (`creditnode roles` says what each may do); "
             "repeat for several")


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}", markup=True, highlight=False)
    return typer.Exit(2)


def _checked(schema, **values):
    """Build an admin API schema from the options, or stop with the reasons."""
    try:
        return schema(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        reasons = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in exc.errors())
        raise _fail(reasons) from None


@contextlib.contextmanager
def _unit(config: Path | None) -> Iterator[tuple[Session, object]]:
    """(session, the operator principal); commits on success; a refused action prints its reason, exit 2."""
    from node.cli import load_settings, operator_principal
    from node.db import make_engine, session_scope
    from node.errors import NodeError

    settings = load_settings(config)
    engine = make_engine(settings.database_url)
    try:
        with session_scope(engine) as session:
            yield session, operator_principal()
    except NodeError as exc:
        raise _fail(f"{exc.message} ({exc.code})") from None
    finally:
        engine.dispose()


def _audit(session: Session, action: str, target_type: str, target_id: object, detail: dict | None = None) -> None:
    from node.cli import audit_operator

    audit_operator(None, action, target_type=target_type, target_id=target_id, detail=detail, session=session)


def _org_line(view) -> str:
    state = "" if view.active else "  (deactivated)"
    extra = f" · {view.institution_type}" if view.institution_type else ""
    return f"{view.code:<16} {view.kind:<12} {view.parent_code or '-':<16} {view.name}{extra}{state}"


def _staff_line(view) -> str:
    state = "" if view.active else "  (disabled)"
    return (f"{view.username:<20} {view.organisation_code or '-':<16} {','.join(view.roles):<40} "
            f"{view.display_name}{state}")


# -- organisations ---------------------------------------------------------------------------------------------


@org_app.command("kinds")
def org_kinds() -> None:
    """The kinds of organisation, where each may sit, and the institution types."""
    from node.org.service import INSTITUTION_TYPES, ORG_KINDS, PARENT_KINDS

    typer.echo("kinds (--kind):")
    for kind, text in ORG_KINDS.items():
        parents = ", ".join("none" if p is None else p for p in sorted(PARENT_KINDS[kind], key=str))
        typer.echo(f"  {kind:<12} {text} [parent: {parents}]")
    typer.echo("institution types (--institution-type, institutions only):")
    for name, text in INSTITUTION_TYPES.items():
        typer.echo(f"  {name:<18} {text}")


@org_app.command("add")
def org_add(
    code: Annotated[str, typer.Argument(help="a short unique code, e.g. SH-HP (letters, digits, . _ -)")],
    name: Annotated[str, typer.Option("--name", help="the organisation's name")],
    kind: Annotated[str, typer.Option("--kind", help="centre | branch | outlet | institution (`org kinds`)")],
    parent: Annotated[str | None, typer.Option("--parent", help="the parent's code (a branch: default the "
                                                                 "centre)")] = None,
    institution_type: Annotated[str | None, typer.Option("--institution-type",
                                                         help="for institutions: university, exam_authority, "
                                                              "appraisal_centre, training_body, … (`org kinds`)")]
    = None,
    config: ConfigOpt = None,
) -> None:
    """Create an organisation."""
    from node.org import router, service
    from node.org.schemas import OrganisationCreate

    body = _checked(OrganisationCreate, code=code, name=name, kind=kind, parent_code=parent,
                    institution_type=institution_type)
    with _unit(config) as (session, _op):
        org = service.create_organisation(session, **body.model_dump())
        view = router.organisation_views(session, [org])[0]
        _audit(session, "organisation.create", "organisation", org.code,
               {"kind": org.kind, "parent": view.parent_code, "institution_type": org.institution_type})
    typer.echo(f"created {_org_line(view)}")


@org_app.command("list")
def org_list(
    kind: Annotated[str | None, typer.Option("--kind")] = None,
    parent: Annotated[str | None, typer.Option("--parent", help="only those under this code")] = None,
    all_: Annotated[bool, typer.Option("--all", help="include deactivated ones")] = False,
    config: ConfigOpt = None,
) -> None:
    """List organisations (code, kind, parent, name)."""
    from node.org import repository as repo
    from node.org import router, service

    with _unit(config) as (session, _op):
        parent_id = service.organisation_by_code(session, parent).id if parent else None
        orgs = repo.organisations(session, kind=kind, parent_id=parent_id, active=None if all_ else True,
                                  limit=100_000)
        views = router.organisation_views(session, orgs)
    for view in views:
        typer.echo(_org_line(view))
    if not views:
        typer.echo("(none)")


@org_app.command("update")
def org_update(
    code: str,
    name: Annotated[str | None, typer.Option("--name")] = None,
    parent: Annotated[str | None, typer.Option("--parent", help="move under this code")] = None,
    institution_type: Annotated[str | None, typer.Option("--institution-type")] = None,
    config: ConfigOpt = None,
) -> None:
    """Rename an organisation, change an institution's type, or move it under another parent."""
    from node.org import router, service
    from node.org.schemas import OrganisationMove, OrganisationUpdate

    changes = _checked(OrganisationUpdate, name=name, institution_type=institution_type)
    move = _checked(OrganisationMove, parent_code=parent) if parent else None
    if not changes.model_dump(exclude_unset=True) and move is None:
        raise _fail("nothing to change: give --name, --parent or --institution-type")
    with _unit(config) as (session, _op):
        org = service.organisation_by_code(session, code)
        changed = service.update_organisation(session, org, changes=changes.model_dump(exclude_unset=True))
        if changed:
            _audit(session, "organisation.update", "organisation", code, {"changed": changed})
        if move is not None:
            old, new = service.move_organisation(session, org, parent_code=move.parent_code)
            _audit(session, "organisation.move", "organisation", code, {"from": old, "to": new})
        view = router.organisation_views(session, [org])[0]
    typer.echo(f"updated {_org_line(view)}")


@org_app.command("disable")
def org_disable(
    code: str,
    reroute_to: Annotated[str | None, typer.Option("--reroute-to", help="a branch (or the centre) that takes "
                                                                         "its open applications")] = None,
    config: ConfigOpt = None,
) -> None:
    """Deactivate an organisation: its staff and API keys stop working; it takes no new applications."""
    from node.deposits.routing import reroute_queue
    from node.org import service

    with _unit(config) as (session, operator):
        org = service.organisation_by_code(session, code)
        service.deactivate_organisation(session, org)
        moved = reroute_queue(session, branch=org, to_code=reroute_to, actor=operator) if reroute_to else []
        _audit(session, "organisation.deactivate", "organisation", code,
               {"rerouted_to": reroute_to, "applications_moved": len(moved)})
    typer.echo(f"{code} deactivated" + (f"; {len(moved)} open applications moved to {reroute_to}" if reroute_to
                                        else ""))


@org_app.command("enable")
def org_enable(code: str, config: ConfigOpt = None) -> None:
    """Activate a deactivated organisation again."""
    from node.org import service

    with _unit(config) as (session, _op):
        service.activate_organisation(session, service.organisation_by_code(session, code))
        _audit(session, "organisation.activate", "organisation", code)
    typer.echo(f"{code} active")


# -- staff ---------------------------------------------------------------------------------------------------


def _password(prompt: bool) -> str | None:
    return typer.prompt("password", hide_input=True, confirmation_prompt=True) if prompt else None


@staff_app.command("add")
def staff_add(
    username: Annotated[str, typer.Argument(help="sign-in name: lower-case letters, digits, . _ -")],
    name: Annotated[str, typer.Option("--name", help="the person's name")],
    org: Annotated[str, typer.Option("--org", help="their organisation's code")],
    role: Annotated[list[str], typer.Option("--role", help=ROLE_HELP)],
    prompt_password: Annotated[bool, typer.Option("--prompt-password", help="type the initial password "
                                                                             "instead of generating one")] = False,
    config: ConfigOpt = None,
) -> None:
    """Create a staff account; prints the generated initial password once."""
    from node.org import router, service
    from node.org.schemas import StaffCreate

    body = _checked(StaffCreate, username=username, display_name=name, organisation_code=org, roles=role,
                    password=_password(prompt_password))
    with _unit(config) as (session, _op):
        staff, generated = service.add_staff(session, **body.model_dump())
        _audit(session, "staff.create", "staff", staff.id,
               {"username": staff.username, "roles": staff.roles, "organisation_id": staff.organisation_id,
                "password_generated": generated is not None})
        view = router.staff_views(session, [staff])[0]
    typer.echo(f"created {_staff_line(view)}")
    if generated:
        typer.echo(f"initial password (shown once): {generated}")


@staff_app.command("list")
def staff_list(
    org: Annotated[str | None, typer.Option("--org")] = None,
    role: Annotated[str | None, typer.Option("--role")] = None,
    all_: Annotated[bool, typer.Option("--all", help="include disabled accounts")] = False,
    config: ConfigOpt = None,
) -> None:
    """List staff accounts (user name, organisation, roles, name)."""
    from node.org import repository as repo
    from node.org import router, service

    with _unit(config) as (session, _op):
        org_id = service.organisation_by_code(session, org).id if org else None
        members = repo.staff_members(session, organisation_id=org_id, role=role, active=None if all_ else True,
                                     limit=100_000)
        views = router.staff_views(session, members)
    for view in views:
        typer.echo(_staff_line(view))
    if not views:
        typer.echo("(none)")


@staff_app.command("update")
def staff_update(
    username: str,
    name: Annotated[str | None, typer.Option("--name")] = None,
    org: Annotated[str | None, typer.Option("--org", help="move to this organisation")] = None,
    config: ConfigOpt = None,
) -> None:
    """Rename a staff member, or move them to another organisation."""
    from node.org import router, service
    from node.org.schemas import StaffUpdate

    body = _checked(StaffUpdate, display_name=name, organisation_code=org)
    if not body.model_dump(exclude_unset=True):
        raise _fail("nothing to change: give --name or --org")
    with _unit(config) as (session, _op):
        staff = service.staff_by_username(session, username)
        changed = service.update_staff(session, staff, changes=body.model_dump(exclude_unset=True))
        _audit(session, "staff.update", "staff", staff.id, {"username": username, "changed": changed})
        view = router.staff_views(session, [staff])[0]
    typer.echo(f"updated {_staff_line(view)}")


@staff_app.command("roles")
def staff_roles(
    username: str,
    set_: Annotated[list[str] | None, typer.Option("--set", help="the whole list; " + ROLE_HELP)] = None,
    add: Annotated[list[str] | None, typer.Option("--add", help=ROLE_HELP)] = None,
    remove: Annotated[list[str] | None, typer.Option("--remove", help=ROLE_HELP)] = None,
    config: ConfigOpt = None,
) -> None:
    """Show a staff member's roles, or change them (--set, or --add/--remove)."""
    from node.org import service
    from node.org.schemas import RolesChange

    with _unit(config) as (session, _op):
        staff = service.staff_by_username(session, username)
        if not (set_ or add or remove):
            typer.echo(f"{username}: {', '.join(staff.roles)}")
            return
        body = _checked(RolesChange, set=set_, add=add or [], remove=remove or [])
        old, new = service.change_roles(session, staff, set_to=body.set, add=body.add, remove=body.remove)
        _audit(session, "staff.roles", "staff", staff.id, {"username": username, "from": old, "to": new})
    typer.echo(f"{username}: {', '.join(old)} → {', '.join(new)}")


def _set_active(username: str, config: Path | None, *, active: bool) -> None:
    from node.org import service

    with _unit(config) as (session, _op):
        staff = service.staff_by_username(session, username)
        service.set_staff_active(session, staff, active=active)
        _audit(session, "staff.enable" if active else "staff.disable", "staff", staff.id, {"username": username})
    typer.echo(f"{username} {'enabled' if active else 'disabled'}")


@staff_app.command("disable")
def staff_disable(username: str, config: ConfigOpt = None) -> None:
    """Disable a staff account: every request it makes is refused from now on."""
    _set_active(username, config, active=False)


@staff_app.command("enable")
def staff_enable(username: str, config: ConfigOpt = None) -> None:
    """Enable a disabled staff account again."""
    _set_active(username, config, active=True)


@staff_app.command("reset-password")
def staff_reset_password(
    username: str,
    prompt_password: Annotated[bool, typer.Option("--prompt-password", help="type the new password instead of "
                                                                             "generating one")] = False,
    config: ConfigOpt = None,
) -> None:
    """Set a new password for a staff member; prints the generated one once. Their sessions end."""
    from node.org import service
    from node.org.schemas import PasswordReset

    body = _checked(PasswordReset, password=_password(prompt_password))
    with _unit(config) as (session, _op):
        staff = service.staff_by_username(session, username)
        generated = service.reset_password(session, staff, password=body.password)
        _audit(session, "staff.reset_password", "staff", staff.id,
               {"username": username, "generated": generated is not None})
    typer.echo(f"{username}: password reset")
    if generated:
        typer.echo(f"new password (shown once): {generated}")


# -- API keys ------------------------------------------------------------------------------------------------


@keys_app.command("create")
def apikeys_create(
    org: Annotated[str, typer.Option("--org", help="the institution's code")],
    label: Annotated[str, typer.Option("--label", help="what the key is for, e.g. the system's name")] = "",
    config: ConfigOpt = None,
) -> None:
    """Create an API key for an institution's system; prints the key once."""
    from node.org import service
    from node.org.schemas import ApiKeyCreate

    body = _checked(ApiKeyCreate, organisation_code=org, label=label)
    with _unit(config) as (session, _op):
        row, key = service.create_api_key(session, organisation_code=body.organisation_code, label=body.label,
                                          created_by=None)
        _audit(session, "api_key.create", "api_key", row.prefix,
               {"organisation_id": row.organisation_id, "label": row.label})
    typer.echo(f"API key for {org} (prefix {row.prefix}); shown once, send it as the X-API-Key header:")
    typer.echo(key)


@keys_app.command("list")
def apikeys_list(
    org: Annotated[str | None, typer.Option("--org")] = None,
    all_: Annotated[bool, typer.Option("--all", help="include revoked keys")] = False,
    config: ConfigOpt = None,
) -> None:
    """List API keys by prefix (the keys themselves are not stored)."""
    from node.org import repository as repo
    from node.org import router, service

    with _unit(config) as (session, _op):
        org_id = service.organisation_by_code(session, org).id if org else None
        views = router.api_key_views(session, repo.api_keys(session, organisation_id=org_id,
                                                            active=None if all_ else True, limit=100_000))
    for v in views:
        state = f"revoked {v.revoked_at:%Y-%m-%d %H:%M}" if v.revoked_at else "active"
        typer.echo(f"{v.prefix:<14} {v.organisation_code:<16} {state:<24} {v.label}")
    if not views:
        typer.echo("(none)")


@keys_app.command("revoke")
def apikeys_revoke(prefix: str, config: ConfigOpt = None) -> None:
    """Revoke an API key by its prefix: it stops working at once."""
    from node.org import service

    with _unit(config) as (session, _op):
        row = service.api_key_by_prefix(session, prefix)
        changed = service.revoke_api_key(session, row)
        _audit(session, "api_key.revoke", "api_key", prefix, {"already_revoked": not changed})
    typer.echo(f"{prefix} revoked" if changed else f"{prefix} was already revoked")


# -- roles -------------------------------------------------------------------------------------------------------


def roles_command(
    operations: Annotated[bool, typer.Option("--operations/--no-operations", help="list each role's operations")]
    = True,
) -> None:
    """Each role: what it is for, where it may be held, and what it may call (from the app's routes)."""
    from fastapi import FastAPI

    from node.org.router import role_table
    from node.roles import operations_by_role
    from node.routers import ROUTERS

    app = FastAPI()
    for r in ROUTERS:
        app.include_router(r)
    for role in role_table(app.routes):
        where = ", ".join(role.organisation_kinds) or "—"
        typer.echo(f"{role.role}: {role.description}")
        typer.echo(f"  held in: {where}; {len(role.operations)} operations")
        if operations:
            for op in role.operations:
                typer.echo(f"    {op.method:<6} {op.path}  {op.summary}")
    _by_role, public = operations_by_role(app.routes)
    typer.echo(f"anyone (no sign-in): {len(public)} operations")
    if operations:
        for op in public:
            typer.echo(f"    {op.method:<6} {op.path}  {op.summary}")


def register(app: typer.Typer) -> None:
    app.add_typer(org_app, name="org")
    app.add_typer(staff_app, name="staff")
    app.add_typer(keys_app, name="apikeys")
    app.command("roles")(roles_command)
