"""`creditnode backup` and `creditnode restore` (registered by `register(app)` in node/cli.py): the passphrase
(a file, `$CREDITNODE_BACKUP_PASSPHRASE`, or a prompt: never an argument, which `ps` would show), progress with
rich, one line on a refusal. The work: `node.ops.backup`, `node.ops.restore`."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

import typer

from node.db import shown_url
from node.ops.backup import BackupError, Reporter, create_backup
from node.ops.backupfile import MIN_PASSPHRASE
from node.ops.restore import restore_backup

__all__ = ["PASSPHRASE_ENV", "register"]

PASSPHRASE_ENV = "CREDITNODE_BACKUP_PASSPHRASE"


def _passphrase(file: Path | None, *, confirm: bool) -> str:
    if file is not None:
        try:
            return file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise BackupError(f"--passphrase-file {file}: {exc.strerror}") from None
    if os.environ.get(PASSPHRASE_ENV):
        return os.environ[PASSPHRASE_ENV]
    return typer.prompt("backup passphrase", hide_input=True, confirmation_prompt=confirm)


@contextlib.contextmanager
def _rich_reporter() -> Iterator[Reporter]:
    from rich.progress import (BarColumn, DownloadColumn, Progress, SpinnerColumn, TextColumn,
                               TimeRemainingColumn, TransferSpeedColumn)

    from node.cli import console

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), TimeRemainingColumn(), console=console) as progress:
        current: list = []

        def finish() -> None:
            for task in current:  # a phase without a known size ends at what it did
                done = progress.tasks[task].total or progress.tasks[task].completed
                progress.update(task, total=done, completed=done)

        def phase(description: str, total: int | None) -> Callable[[int], None]:
            finish()
            task = progress.add_task(description, total=total)
            current[:] = [task]
            return lambda n: progress.advance(task, n)

        yield phase
        finish()


PassphraseOpt = Annotated[Path | None, typer.Option(
    help=f"read the passphrase from this file (else ${PASSPHRASE_ENV}, else a prompt); at least {MIN_PASSPHRASE} "
         "characters")]


def backup_command(
    output: Annotated[Path, typer.Argument(help="the backup file to write (must not exist)")],
    config: Annotated[Path | None, typer.Option("--config", "-c", help="configuration file (default: "
                                                "$CREDITNODE_CONFIG, else ./creditnode.toml)")] = None,
    passphrase_file: PassphraseOpt = None,
    logical: Annotated[bool, typer.Option(help="the database as an engine-neutral logical dump (restores into "
                                          "SQLite or PostgreSQL: to move a node between them)")] = False,
) -> None:
    """Write an encrypted backup of this node — its database (online, while the node runs), signing keys,
    configuration with its secrets, evidence files and import uploads — to one file (docs/operations.md)."""
    from node.cli import audit_operator, fail, load_settings

    settings = load_settings(config)
    try:
        passphrase = _passphrase(passphrase_file, confirm=True)
        with _rich_reporter() as reporter:
            report = create_backup(settings, output, passphrase, config_file=config, reporter=reporter,
                                   logical=logical)
    except BackupError as exc:
        audit_operator(settings, "node.backup", target_type="node", target_id=settings.node_id, outcome="failed",
                       detail={"file": output.name, "error": str(exc)[:300]})
        fail(str(exc))
    audit_operator(settings, "node.backup", target_type="node", target_id=settings.node_id,
                   detail={"file": report.path.name, "size": report.size, "parts": len(report.parts),
                           "schema": report.manifest["schema_revision"]})
    typer.echo(f"backup of {settings.node_id} written to {report.path} ({report.size:,} bytes, "
               f"{len(report.parts)} parts, database {report.manifest['database']['format']}"
               + (f" because {report.manifest['database']['why']}" if report.manifest["database"].get("why")
                  == "pg_dump is not on PATH" else "") + f", schema {', '.join(report.manifest['schema_revision'])}); keep the "
               "passphrase apart from the file: without it the backup cannot be read")


def restore_command(
    backup: Annotated[Path, typer.Argument(help="a file written by `creditnode backup`")],
    data_dir: Annotated[Path | None, typer.Option(help="restore into this data directory (default: the "
                                                  "configured node's)")] = None,
    database_url: Annotated[str | None, typer.Option(help="restore into this database (default: the configured "
                                                     "node's, else the backup's, else SQLite in the data "
                                                     "directory)")] = None,
    force: Annotated[bool, typer.Option(help="replace a database and data directory that are not empty (stop the "
                                        "node first)")] = False,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="the node to restore in place (default: "
                                                "$CREDITNODE_CONFIG, else ./creditnode.toml)")] = None,
    passphrase_file: PassphraseOpt = None,
) -> None:
    """Restore a node from a backup: checks the whole file first, refuses a non-empty target without --force,
    then runs the migrations if the backup is older than this software. Then re-sync with the peers."""
    from config.settings import ConfigurationProblem, find_settings
    from node.cli import fail

    if data_dir is None:
        try:
            current = find_settings(config)
        except ConfigurationProblem as exc:
            fail(f"{exc} (or give --data-dir for a new node)")
        data_dir = current.node.data_dir
        database_url = database_url or current.database.url
    try:
        passphrase = _passphrase(passphrase_file, confirm=False)
        with _rich_reporter() as reporter:
            report = restore_backup(backup, passphrase, data_dir=data_dir, database_url=database_url, force=force,
                                    reporter=reporter)
    except BackupError as exc:
        fail(str(exc))
    m = report.manifest
    typer.echo(f"restored {m['node_id']} ({m['did']}) as of {m['created_at']}: database {shown_url(report.database_url)}, "
               f"{report.files} stored file(s), configuration {report.config_path}")
    if report.migrated_from != report.migrated_to:
        typer.echo(f"schema migrated from {', '.join(report.migrated_from)} to {', '.join(report.migrated_to)}")
    typer.echo("next:")
    typer.echo(f"  export CREDITNODE_CONFIG={report.config_path}")
    typer.echo("  creditnode ledger verify")
    typer.echo("  creditnode serve   # then, for every member: creditnode federation resync PEER "
               "(docs/federation.md §4.1)")


def register(app: typer.Typer) -> None:
    app.command("backup")(backup_command)
    app.command("restore")(restore_command)
