"""The `creditnode` command."""

from __future__ import annotations

import base64
import os
import secrets
import shutil
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from config.settings import (
    EXAMPLES_DIR,
    ConfigurationProblem,
    InsecureConfiguration,
    Settings,
    find_settings,
    load_region,
    region_names,
)
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
    Path | None,
    typer.Option("--config", "-c", help="configuration file (default: $CREDITNODE_CONFIG, else ./creditnode.toml)"),
]
EXAMPLE_SCORES = EXAMPLES_DIR / "shanghai-scores.csv"


def fail(message: str, code: int = 2) -> NoReturn:
    """One line on stderr, then exit: what is wrong and how to fix it (no traceback)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def load_settings(config: Path | None, *, need_database: bool = True) -> Settings:
    """The settings of the node a command works on; exits with one line when there is no usable configuration
    (`--config`, else `$CREDITNODE_CONFIG`, else `./creditnode.toml`, else an environment holding the secrets) or,
    with `need_database`, when its database is missing, unreachable or its schema is not current. Creates no
    file and no database."""
    from node.db import database_problem

    try:
        settings = find_settings(config)
    except ConfigurationProblem as exc:
        fail(str(exc))
    if need_database:
        problem = database_problem(settings.database_url)
        if problem:
            fail(problem)
    return settings


def operator_principal():
    """Who runs an operator command: the local OS user."""
    import getpass

    from node.deps import Principal

    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name (a container); the uid still names the operator
        user = "unknown"
    return Principal("operator", os.getuid(), f"operator:{user}"[:100], ("operator",))


def audit_operator(settings: Settings | None, action: str, *, target_type: str | None = None,
                   target_id: object = None, detail: dict | None = None, session=None, outcome: str = "ok") -> None:
    """Operator commands are staff actions too: record them in the audit log as the local OS user — in the
    command's own unit of work when it has one (`session`), so the action and its audit entry commit together."""
    from node.audit.service import record
    from node.db import make_engine, session_scope

    actor = operator_principal()
    if session is not None:
        record(session, actor=actor, action=action, target_type=target_type, target_id=target_id, detail=detail,
               outcome=outcome)
        return
    engine = make_engine(settings.database_url)
    try:
        with session_scope(engine) as own:
            record(own, actor=actor, action=action, target_type=target_type, target_id=target_id, detail=detail,
                   outcome=outcome)
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
    mode: str = "development", admin_password: str | None = None, load_standards: bool = False,
    allow_http_base_url: bool = False,
) -> tuple[Path, str]:
    """Write a configuration with fresh secrets, build the schema, create the centre, the node's key ring and the
    first admin; with `load_standards`, load the region's standards bundles (`RegionProfile.standards`).
    Returns (config path, admin password)."""
    from node.bootstrap import bootstrap_node

    profile = load_region(region)
    if mode == "production" and (base_url or profile.base_url).startswith("http://") and not allow_http_base_url:
        raise ValueError("production needs an https --base-url (did:web requires https); "
                         "--allow-http-base-url only for a node on a private network")
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    config_path = data_dir / "creditnode.toml"
    if config_path.exists():
        raise FileExistsError(f"{config_path} exists; this data directory is already initialised")
    write_config(
        config_path,
        {
            "node": {"region": region, "data_dir": str(data_dir), "mode": mode,
                     "base_url": base_url or profile.base_url, "allow_http_base_url": allow_http_base_url},
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
    if load_standards and profile.standards:
        from node.db import make_engine
        from node.standards.cli import load_files

        engine = make_engine(settings.database_url)
        try:
            load_files(engine, list(profile.standards_files))
        finally:
            engine.dispose()
    return config_path, password


def _standards_command(files: tuple[Path, ...]) -> str:
    return "creditnode standards load " + " ".join(str(f) for f in files)


@app.command()
def init(
    region: Annotated[str, typer.Option(help=f"one of: {', '.join(region_names())}")],
    data_dir: Annotated[Path, typer.Option(help="directory for the database, keys and evidence files")],
    base_url: Annotated[str | None, typer.Option(help="public base URL (default: the region file's)")] = None,
    database_url: Annotated[str | None, typer.Option(help="PostgreSQL URL (default: SQLite in data dir)")] = None,
    mode: Annotated[str, typer.Option(help="development | production")] = "development",
    standards: Annotated[bool, typer.Option(help="load the region's published standards and the shared "
                                                 "framework (config/standards/)")] = True,
    allow_http_base_url: Annotated[bool, typer.Option(
        help="production with an http:// base URL, for a node on a private network only")] = False,
) -> None:
    """Write a working configuration with fresh secrets, build the schema, create the node's keys and the first
    administrator, and load the region's published conversion standards."""
    from node.errors import NodeError

    try:
        profile = load_region(region)
        config_path, password = initialise_node(
            region=region, data_dir=data_dir, base_url=base_url, database_url=database_url, mode=mode,
            load_standards=standards,
            allow_http_base_url=allow_http_base_url,
        )
    except (FileExistsError, ValueError, InsecureConfiguration) as exc:
        fail(str(exc))
    except NodeError as exc:  # a standards bundle refused: the node itself is initialised
        fail(f"the node is initialised, but loading its standards failed: {exc.message}")
    settings = Settings()
    from crypto.did import did_web_from_url

    echo = typer.echo
    echo(f"configuration written to {config_path} (mode 0600)")
    echo(f"node {settings.node_id}: {settings.base_url} ({did_web_from_url(settings.base_url)}), "
         f"database {_shown_database(settings)}")
    if standards and profile.standards:
        echo("standards loaded: " + ", ".join(f.name for f in profile.standards_files))
    echo(f"administrator: admin  password (shown once): {password}")
    echo("next:")
    echo(f"  export CREDITNODE_CONFIG={config_path}")
    if not standards:
        echo(f"  {_standards_command(profile.standards_files)}   # the region's standards and the framework")
    elif len(profile.standards) <= 1:
        echo(f"  creditnode standards load FILE.json   # {region} ships no conversion standards of its own "
             "(docs/conversion.md)")
    echo(f"  creditnode serve &   # API and docs at {settings.base_url}/docs (or in another terminal)")
    echo("  creditnode org add U001 --name 示例大学 --kind institution --institution-type university")
    echo("  creditnode example scores.csv   # a small Shanghai-template file of made-up learners")
    echo("  creditnode import scores.csv --institution U001")


def _shown_database(settings: Settings) -> str:
    from node.db import shown_url

    return shown_url(settings.database_url)


@app.command()
def example(
    path: Annotated[Path, typer.Argument(help="where to write it (an existing file is left alone)")] = Path(
        "scores.csv"),
) -> None:
    """Write a small example file in the Shanghai university template (five made-up learners, twelve course
    results; UTF-8 with BOM) to try `creditnode import` with."""
    if path.exists():
        fail(f"{path} exists; give another file name")
    shutil.copyfile(EXAMPLE_SCORES, path)
    typer.echo(f"wrote {path}: 12 course results of 5 made-up learners (address code 319999 belongs to no place)")


@app.command()
def serve(
    config: ConfigOpt = None,
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="default: the base URL's port when it names this host, "
                                                  "else the region file's")] = None,
    behind_proxy: Annotated[bool, typer.Option(help="a reverse proxy serves the base URL: --port may differ "
                                                    "from the base URL's")] = False,
    workers: Annotated[int, typer.Option(min=1, max=64, help="worker processes sharing the port (more than one "
                                                             "needs PostgreSQL)")] = 1,
) -> None:
    """Run the node's web server. Refuses a --port that disagrees with the configured base URL, which every
    credential and DID document names. With --workers N, N processes share the port (uvicorn's supervisor
    restarts one that dies): they need PostgreSQL, and share rate limits through it (docs/operations.md)."""
    import uvicorn

    from crypto.did import did_web_from_url
    from node.app import create_app
    from node.logging import AccessLog, uvicorn_log_config
    from node.ops.checks import direct_port, port_problem

    settings = load_settings(config)
    did = did_web_from_url(settings.base_url)
    expected = direct_port(settings.base_url, host)
    if port is None:
        port = expected or settings.region.default_port
    elif not behind_proxy:
        problem = port_problem(base_url=settings.base_url, did=did, host=host, port=port,
                               config=Path(os.environ["CREDITNODE_CONFIG"]) if os.environ.get("CREDITNODE_CONFIG")
                               else None)
        if problem:
            fail(problem)
    notes: list[str] = []
    if workers > 1:
        settings = _prepare_workers(settings, workers, notes)
    try:
        application = create_app(settings)
    except (FileNotFoundError, InsecureConfiguration) as exc:
        fail(str(exc))
    import logging

    for note in notes:
        logging.getLogger("creditnode").info("%s", note)

    logging.getLogger("creditnode").info("node %s as %s: listening on http://%s:%s, base URL %s%s", settings.node_id,
                                         did, host, port, settings.base_url,
                                         f", {workers} worker processes" if workers > 1 else "")
    # the access lines are the node's own (node.logging.AccessLog, written by its outermost middleware)
    application.state.access_log = AccessLog(settings.node.log_level, settings.node.log_format)
    options = dict(host=host, port=port, log_level=None, access_log=False,
                   log_config=uvicorn_log_config(settings.node.log_level, settings.node.log_format,
                                                 access_log=False),
                   # the node itself decides whose X-Forwarded-For to believe (ratelimit.forwarded_allow_ips,
                   # node.security.ratelimit); uvicorn's default trusts any local caller
                   proxy_headers=False)
    if workers == 1:
        uvicorn.run(application, **options)
        return
    # The parent built the app once to check the configuration; each worker builds its own from the environment.
    application.state.ctx.engine.dispose()
    try:
        uvicorn.run("node.app:create_app_from_env", factory=True, workers=workers, **options)
    finally:
        _clean_metrics_dir()


_OWN_METRICS_DIR: list[str] = []


def _prepare_workers(settings: Settings, workers: int, notes: list[str]) -> Settings:
    """Check that `workers` processes can serve this node and set up what they share, through the environment
    the workers inherit: the configuration file, rate-limit counters in the database when they were in memory,
    and a Prometheus multiprocess directory (docs/operations.md, "Several workers")."""
    import tempfile

    from node.db import is_sqlite

    if is_sqlite(settings.database_url):
        fail(f"--workers {workers} needs PostgreSQL: a SQLite database has one writer at a time, so more processes "
             "add no capacity and would only wait for its lock; serve SQLite with one worker, or set database.url "
             "to a PostgreSQL database")
    if settings.ratelimit.storage_uri.strip().startswith("memory:"):
        # in-memory counters per process would let each worker allow the whole limit
        os.environ["CREDITNODE_RATELIMIT__STORAGE_URI"] = "database"
        notes.append(f"rate limits: ratelimit.storage_uri is memory://, so the counters are kept in the database, "
                     f"shared by the {workers} workers")
    if settings.ops.metrics_enabled and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        path = tempfile.mkdtemp(prefix="creditnode-metrics-")
        _OWN_METRICS_DIR.append(path)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
        notes.append(f"metrics: the workers' counters are summed through {path} (PROMETHEUS_MULTIPROC_DIR)")
    elif os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        path = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
        if not path.is_dir():
            fail(f"PROMETHEUS_MULTIPROC_DIR={path} is not a directory: create it (empty) or unset it")
    return load_settings(None)


def _clean_metrics_dir() -> None:
    """Remove the metrics directory `serve` made for its workers (not one the operator set)."""
    for path in _OWN_METRICS_DIR:
        shutil.rmtree(path, ignore_errors=True)
    _OWN_METRICS_DIR.clear()


@db_app.command("upgrade")
def db_upgrade(config: ConfigOpt = None) -> None:
    """Run the migrations up to the newest schema (creates the database's schema on a new database)."""
    from node.db import upgrade_database

    settings = load_settings(config, need_database=False)
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


@keys_app.command("reencrypt")
def keys_reencrypt(
    config: ConfigOpt = None,
    batch_size: Annotated[int, typer.Option(min=1, max=100_000, help="values per committed batch")] = 1000,
) -> None:
    """Re-encrypt every value still under a retired database key with the current one (resumable: each batch
    is committed; run it again after an interruption). Then the retired key can be removed."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from node.db import make_engine, session_scope
    from node.identity.keyring import keyring_key_id, reencrypt_keyring
    from node.security.fields import FieldCipher
    from node.security.reencrypt import TARGETS, missing_keys

    settings = load_settings(config)
    cipher = FieldCipher.from_settings(settings)
    current = cipher.current_key_id
    engine = make_engine(settings.database_url)
    done: dict[str, int] = {}
    keyring = False
    files = 0
    outcome = "failed"
    try:
        with session_scope(engine) as session:
            stale = {t.name: t.stale(session, current) for t in TARGETS}
        missing = missing_keys(stale, cipher)
        if missing:
            console.print(f"[red]error:[/red] values are encrypted with key id(s) {', '.join(missing)}, which are "
                          "not configured: add them to security.retired_database_keys first")
            raise typer.Exit(2)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=console) as progress:
            for target in TARGETS:
                total = sum(stale[target.name].values())
                task = progress.add_task(target.name, total=total)
                done[target.name] = 0
                while True:
                    with session_scope(engine) as session:  # one committed batch: an interruption keeps it
                        count = target.batch(session, cipher, batch_size)
                    if not count:
                        break
                    done[target.name] += count
                    progress.update(task, completed=min(done[target.name], total))
        if settings.node_key_file.is_file() and keyring_key_id(settings) != current:
            keyring = reencrypt_keyring(settings)
        # stored upload and evidence files (node.security.filecrypt): rewritten in place, a re-run skips done ones
        from node.security.filecrypt import reencrypt_stored_files

        files = reencrypt_stored_files(settings)["reencrypted"]
        outcome = "ok"
    finally:
        engine.dispose()
        if outcome == "ok" or done:
            audit_operator(settings, "keys.reencrypt", target_type="database_key", target_id=current,
                           outcome=outcome, detail={"reencrypted": done, "keyring": keyring, "files": files,
                                                    "batch_size": batch_size})
    console.print(f"every encrypted value is under database key {current}"
                  + (" (the node key ring too)" if keyring else "")
                  + (f" ({files} stored upload/evidence file(s) rewritten)" if files else "")
                  + ": the retired keys can be removed from security.retired_database_keys")


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
    file: Annotated[Path, typer.Argument(help="a credential or transcript: JSON, or a transcript PDF")],
    did_document: Annotated[list[Path] | None, typer.Option(
        "--did-document", help="the issuer's did.json (repeatable): verify offline with these keys")] = None,
    status_list: Annotated[list[Path] | None, typer.Option(help="status list credential(s) (JSON)")] = None,
    allow_http: Annotated[bool, typer.Option(
        help="online: resolve did:web over http too (a private network; loopback hosts always may)")] = False,
) -> None:
    """Verify a credential or transcript (JSON, or the PDF 成绩证明 with its embedded signed transcript).
    Offline with `--did-document`; otherwise online: the issuer's did:web document and status list are fetched."""
    import json

    import httpx

    from node.credentials.pdf import PdfUnreadable, extract_presentation
    from node.credentials.resolvers import web_resolvers
    from node.credentials.verify import verify_document

    data = file.read_bytes()
    try:
        document = extract_presentation(data) if data.startswith(b"%PDF-") else json.loads(data.decode("utf-8"))
    except PdfUnreadable as exc:
        console.print(f"[red]INVALID[/red] {file}: {exc}")
        raise typer.Exit(1) from None
    except (UnicodeDecodeError, ValueError):
        console.print(f"[red]INVALID[/red] {file}: neither a PDF nor JSON")
        raise typer.Exit(1) from None
    lists = {}
    for path in status_list or []:
        doc = json.loads(path.read_text(encoding="utf-8"))
        lists[doc["id"]] = doc
    if did_document:
        docs = {}
        for path in did_document:
            doc = json.loads(path.read_text(encoding="utf-8"))
            docs[doc["id"]] = doc
        report = verify_document(document, resolve_did=docs.get, fetch_status=lists.get if lists else None)
    else:
        with httpx.Client(timeout=httpx.Timeout(10.0, connect=5.0), follow_redirects=False) as http:
            online = web_resolvers(http, allow_http=allow_http)
            fetch = (lambda url: lists.get(url) or online["fetch_status"](url))
            report = verify_document(document, resolve_did=online["resolve_did"], fetch_status=fetch)

    def show(rep, indent: str = "") -> None:
        colour = "green" if rep.valid else "red"
        console.print(f"{indent}[{colour}]{'VALID' if rep.valid else 'INVALID'}[/{colour}] {rep.kind} {rep.id or ''}")
        for check in rep.checks:
            mark = {True: "ok", False: "FAIL", None: "--"}[check.ok]
            console.print(f"{indent}  {mark:4} {check.check}: {check.reason}")
        for sub in rep.credentials:
            show(sub, indent + "  ")

    if isinstance(document, dict) and isinstance(document.get("learnerName"), str) and report.valid:
        console.print(f"learner (as printed): {document['learnerName']}")
    show(report)
    raise typer.Exit(0 if report.valid else 1)


def _register_subcommands() -> None:
    """Domain packages add their own commands (each module has `register(app)`)."""
    import importlib

    for module in SUBCOMMAND_MODULES:
        importlib.import_module(module).register(app)


SUBCOMMAND_MODULES: tuple[str, ...] = ("node.imports.cli", "federation.cli", "node.demo.cli",
                                       "node.standards.cli", "node.org.cli", "node.learners.cli",
                                       "node.ops.backup_cli", "node.stats.cli")
_register_subcommands()
