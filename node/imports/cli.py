"""`creditnode import FILE --institution CODE`: the same import path as the API, run in this process."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from node.imports.formats import format_for

__all__ = ["register"]

console = Console()


def import_command(
    file: Annotated[Path, typer.Argument(help="Shanghai template (.csv, .xlsx) or JSON Lines (.jsonl)",
                                         exists=True, dir_okay=False, readable=True)],
    institution: Annotated[str, typer.Option("--institution", "-i", help="code of the depositing institution")],
    config: Annotated[Path | None, typer.Option("--config", "-c", help="configuration file")] = None,
    format_: Annotated[str | None, typer.Option("--format", "-f",
                                                help="shanghai-csv | shanghai-xlsx | jsonl (default: by extension)")]
    = None,
    report: Annotated[Path | None, typer.Option(help="where to write the rejected-rows report (CSV)")] = None,
) -> None:
    """Deposit a bulk file for an institution, with a progress bar and a summary."""
    from node.cli import load_settings
    from node.context import NodeContext
    from node.db import session_scope
    from node.deps import Principal
    from node.errors import NodeError
    from node.imports.results import write_report
    from node.imports.service import create_job, institution_for, run_job, store_upload
    from node.models import ImportJob

    settings = load_settings(config)
    ctx = NodeContext.build(settings)
    actor = Principal(kind="system", id=0, name=f"cli:{_user()}"[:64], roles=("node_admin",))
    try:
        try:
            fmt = format_for(file.name, format_)
            with session_scope(ctx.engine) as session:
                org = institution_for(session, principal=actor, institution_code=institution)
                with file.open("rb") as fh:
                    sha, stored = store_upload(ctx, fh, file.name)
                job = create_job(session, ctx, institution=org, path=stored, sha256=sha, filename=file.name,
                                 requested_format=fmt, actor=actor)
                job_id = job.id
        except NodeError as exc:
            console.print(f"[red]error:[/red] {exc.message}")
            raise typer.Exit(2) from None
        with session_scope(ctx.engine) as session:
            total = session.get(ImportJob, job_id).total_rows  # type: ignore[union-attr] - counted at upload
        with Progress(TextColumn("[bold]importing[/bold]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      TextColumn("{task.fields[summary]}"), console=console, transient=False) as bar:
            task = bar.add_task("import", total=total, summary="")

            def progress(state) -> None:
                bar.update(task, completed=state.rows_committed,
                           summary=f"deposited {state.deposited} rejected {state.rejected} "
                                   f"learners {state.learners_created}")

            final = run_job(ctx, job_id, progress=progress)
            bar.update(task, completed=final.rows_committed, total=final.rows_committed)
        report_path = None
        if final.rejected:
            report_path = report or (settings.node.data_dir / "imports" / "reports" / f"{job_id}.csv")
            write_report(ctx, job_id, report_path)
        console.print(f"job {job_id}: [bold]{final.status}[/bold]")
        console.print(f"rows read   {final.rows_read}")
        console.print(f"deposited   {final.deposited}")
        console.print(f"updated     {final.updated}")
        console.print(f"duplicates  {final.duplicates}")
        console.print(f"rejected    {final.rejected}")
        console.print(f"learners created {final.learners_created}")
        console.print(f"report      {report_path if report_path else '(no rejected rows)'}")
        if final.status != "done":
            console.print(f"[red]error:[/red] {final.error}")
            raise typer.Exit(1)
    finally:
        ctx.engine.dispose()


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001
        return "unknown"


def register(app: typer.Typer) -> None:
    app.command("import")(import_command)
