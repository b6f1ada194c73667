"""The `creditnode` command."""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from config.settings import Settings, load_region, region_names
from node.identity.keyring import create_keyring, load_keyring, revoke_key, rotate_keyring

app = typer.Typer(help="Node of the Yangtze Delta lifelong-learning credit bank federation.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
keys_app = typer.Typer(help="The node's signing keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
ledger_app = typer.Typer(help="The node's ledger and its Merkle log.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")
console = Console()

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="configuration file (default: $CREDITNODE_CONFIG)")
]


def load_settings(config: Path | None) -> Settings:
    if config is not None:
        os.environ["CREDITNODE_CONFIG"] = str(config.resolve())
    return Settings()


def audit_operator(settings: Settings, action: str, *, target_type: str | None = None, target_id: object = None,
                   detail: dict | None = None) -> None:
    """Operator commands are staff actions too: record them in the audit log as the local OS user."""
    import getpass

    from node.audit.service import record
    from node.db import make_engine, session_scope
    from node.deps import Principal

    actor = Principal("operator", os.getuid(), f"operator:{getpass.getuser()}", ("operator",))
    engine = make_engine(settings.database_url)
    try:
        with session_scope(engine) as session:
            record(session, actor=actor, action=action, target_type=target_type, target_id=target_id,
                   detail=detail)
    finally:
        engine.dispose()


def _fresh_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def write_config(path: Path, sections: dict[str, dict[str, object]]) -> None:
    lines = ["# Written by `creditnode init`. Holds secrets: keep it private (mode 0600), back it up.", ""]
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in values.items() if v is not None)
        lines.append("")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines))


def initialise_node(
    *, region: str, data_dir: Path, base_url: str | None = None, database_url: str | None = None,
    mode: str = "development", admin_password: str | None = None,
) -> tuple[Path, str]:
    """Write a configuration with fresh secrets, build the schema, create the centre and the first admin.
    Returns (config path, admin password)."""
    from node.bootstrap import bootstrap_node

    profile = load_region(region)
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    config_path = data_dir / "creditnode.toml"
    if config_path.exists():
        raise FileExistsError(f"{config_path} exists; this data directory is already initialised")
    write_config(
        config_path,
        {
            "node": {"region": region, "data_dir": str(data_dir), "mode": mode,
                     "base_url": base_url or profile.base_url},
            "database": {"url": database_url},
            "security": {"database_key": _fresh_key(), "database_key_id": "k1",
                         "blind_index_key": _fresh_key(), "token_secret": _fresh_key()},
        },
    )
    os.environ["CREDITNODE_CONFIG"] = str(config_path)
    settings = Settings()
    password = admin_password or secrets.token_urlsafe(12)
    bootstrap_node(settings, admin_password=password)
    ring = create_keyring(settings, exist_ok=False)
    audit_operator(settings, "node.init", target_type="node", target_id=region,
                   detail={"data_dir": str(data_dir), "mode": mode, "key_id": getattr(ring, "current", None)})
    return config_path, password


@app.command()
def init(
    region: Annotated[str, typer.Option(help=f"one of: {', '.join(region_names())}")],
    data_dir: Annotated[Path, typer.Option(help="directory for the database, keys and evidence files")],
    base_url: Annotated[str | None, typer.Option(help="public base URL (default: the region file's)")] = None,
    database_url: Annotated[str | None, typer.Option(help="PostgreSQL URL (default: SQLite in data dir)")] = None,
    mode: Annotated[str, typer.Option(help="development | production")] = "development",
) -> None:
    """Write a working configuration with fresh secrets and create the first administrator."""
    try:
        config_path, password = initialise_node(
            region=region, data_dir=data_dir, base_url=base_url, database_url=database_url, mode=mode
        )
    except (FileExistsError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    console.print(f"configuration written to [bold]{config_path}[/bold] (mode 0600)")
    console.print("administrator: [bold]admin[/bold]  password (shown once): " f"[bold]{password}[/bold]")
    console.print(f"next: export CREDITNODE_CONFIG={config_path}; creditnode serve")


@app.command()
def serve(
    config: ConfigOpt = None,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="default: the region file's port")] = None,
) -> None:
    """Run the node's web server."""
    import uvicorn

    from node.app import create_app

    settings = load_settings(config)
    uvicorn.run(create_app(settings), host=host, port=port or settings.region.default_port, log_level="info")


@db_app.command("upgrade")
def db_upgrade(config: ConfigOpt = None) -> None:
    """Run the migrations up to the newest schema."""
    from node.db import upgrade_database

    settings = load_settings(config)
    upgrade_database(settings.database_url)
    console.print("schema is up to date")


@keys_app.command("list")
def keys_list(config: ConfigOpt = None) -> None:
    """Show the node's keys (public parts only)."""
    settings = load_settings(config)
    ring = load_keyring(settings)
    for key in ring.keys:
        mark = "current" if key.key_id == ring.current else (f"revoked {key.revoked}" if key.revoked
                                                               else f"expires {key.expires}")
        console.print(f"{key.key_id}  {key.signing_key.public_multikey}  {mark}")


@keys_app.command("rotate")
def keys_rotate(
    config: ConfigOpt = None,
    keep_old_days: Annotated[int, typer.Option(help="how long the old key stays valid for old signatures")] = 365,
) -> None:
    """Add a new current key; the old one stays published with an expiry so old signatures still verify."""
    settings = load_settings(config)
    ring = rotate_keyring(settings, keep_old_days=keep_old_days)
    audit_operator(settings, "keys.rotate", target_type="key", target_id=ring.current,
                   detail={"keep_old_days": keep_old_days})
    console.print(f"current key is now {ring.current}; restart the node (or its workers) to use it")


@keys_app.command("revoke")
def keys_revoke(key_id: str, config: ConfigOpt = None) -> None:
    """Mark an old key compromised: signatures made with it stop verifying."""
    settings = load_settings(config)
    try:
        revoke_key(settings, key_id)
    except (KeyError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    audit_operator(settings, "keys.revoke", target_type="key", target_id=key_id)
    console.print(f"{key_id} revoked")


@ledger_app.command("verify")
def ledger_verify(config: ConfigOpt = None) -> None:
    """Recompute the ledger's hash chain and Merkle roots and compare with the signed checkpoints."""
    from node.db import make_engine, session_scope
    from node.ledger.log import verify_log

    settings = load_settings(config)
    engine = make_engine(settings.database_url)
    with session_scope(engine) as session:
        problems = verify_log(session)
    engine.dispose()
    if problems:
        for p in problems:
            console.print(f"[red]seq {p.seq}:[/red] {p.problem}")
        raise typer.Exit(1)
    console.print("ledger intact: every leaf, link and checkpoint recomputes")


@app.command("verify")
def verify_file(
    file: Annotated[Path, typer.Argument(help="a credential or transcript (JSON)")],
    did_document: Annotated[list[Path], typer.Option("--did-document", help="the issuer's did.json (repeatable)")],
    status_list: Annotated[list[Path] | None, typer.Option(help="status list credential(s) (JSON)")] = None,
) -> None:
    """Verify a credential or transcript offline, given the issuer's DID document."""
    import json

    from node.credentials.verify import verify_document

    docs = {}
    for path in did_document:
        doc = json.loads(path.read_text(encoding="utf-8"))
        docs[doc["id"]] = doc
    lists = {}
    for path in status_list or []:
        doc = json.loads(path.read_text(encoding="utf-8"))
        lists[doc["id"]] = doc
    report = verify_document(json.loads(file.read_text(encoding="utf-8")), resolve_did=docs.get,
                             fetch_status=lists.get if lists else None)

    def show(rep, indent: str = "") -> None:
        colour = "green" if rep.valid else "red"
        console.print(f"{indent}[{colour}]{'VALID' if rep.valid else 'INVALID'}[/{colour}] {rep.kind} {rep.id or ''}")
        for check in rep.checks:
            mark = {True: "ok", False: "FAIL", None: "--"}[check.ok]
            console.print(f"{indent}  {mark:4} {check.check}: {check.reason}")
        for sub in rep.credentials:
            show(sub, indent + "  ")

    show(report)
    raise typer.Exit(0 if report.valid else 1)


def _register_subcommands() -> None:
    """Domain packages add their own commands (each module has `register(app)`)."""
    import importlib

    for module in SUBCOMMAND_MODULES:
        importlib.import_module(module).register(app)


SUBCOMMAND_MODULES: tuple[str, ...] = ("node.imports.cli", "federation.cli", "node.demo.cli",
                                       "node.standards.cli")
_register_subcommands()
