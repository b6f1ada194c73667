"""`creditnode jobs list|run NAME` and `creditnode federation streams|resync PEER` (added to the node's CLI by
`register(app)`)."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="configuration file (default: $CREDITNODE_CONFIG)")
]


def _context(config: Path | None):
    """The node's context; exits with one line when there is no usable configuration or database."""
    from config.settings import ConfigurationProblem, find_settings
    from node.context import NodeContext
    from node.db import database_problem

    try:
        settings = find_settings(config)
    except ConfigurationProblem as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    problem = database_problem(settings.database_url)
    if problem:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2)
    return NodeContext.build(settings)


def register(app: typer.Typer) -> None:
    jobs_app = typer.Typer(help="Scheduled jobs (area.verb), run once.", no_args_is_help=True)
    app.add_typer(jobs_app, name="jobs")

    @jobs_app.command("list")
    def jobs_list() -> None:
        """List the jobs and their schedule."""
        from federation.jobs import JOBS

        for item in sorted(JOBS.values(), key=lambda j: j.name):
            typer.echo(f"{item.name:28} every {item.interval_seconds:>5}s  {item.description}")

    @jobs_app.command("run")
    def jobs_run(name: str, config: ConfigOpt = None) -> None:
        """Run one job once, now."""
        from federation.jobs import JOBS, run_job
        from federation.runtime import runtime

        if name not in JOBS:
            typer.echo(f"unknown job {name!r}; known: {', '.join(sorted(JOBS))}", err=True)
            raise typer.Exit(2)
        ctx = _context(config)
        try:
            result = run_job(name, ctx)
        finally:
            runtime(ctx).close()
            ctx.engine.dispose()
        typer.echo(json.dumps(result, ensure_ascii=False, default=str))

    federation_app = typer.Typer(help="Peer message streams: their state, and the re-sync of a wedged one.",
                                 no_args_is_help=True)
    app.add_typer(federation_app, name="federation")

    @federation_app.command("streams")
    def streams(config: ConfigOpt = None) -> None:
        """Per peer: sequence counters, outbound messages by state, the head message; WEDGED when it is dead."""
        from federation.runtime import runtime
        from federation.streams import stream_status
        from node.db import session_scope

        ctx = _context(config)
        try:
            with session_scope(ctx.engine) as session:
                rows = stream_status(session)
        finally:
            runtime(ctx).close()
            ctx.engine.dispose()
        for row in rows:
            head = row["head"]
            state = "WEDGED" if row["wedged"] else "ok"
            counts = ", ".join(f"{n} {k}" for k, n in sorted(row["outbound"].items())) or "nothing sent"
            typer.echo(f"{row['peer']:12} {state:7} out next {row['next_out_seq']:>6}  in next "
                       f"{row['next_in_seq']:>6}  {counts}")
            if head is not None:
                typer.echo(f"{'':12} head seq {head['seq']} {head['state']} ({head['attempts']} attempts): "
                           f"{head['last_error'] or '-'}")

    @federation_app.command("resync")
    def resync(
        peer: Annotated[str, typer.Argument(help="the member whose stream from this node is to be re-synced")],
        discard: Annotated[list[str] | None, typer.Option(
            "--discard", help="message id of an undelivered message to drop (repeatable)")] = None,
        config: ConfigOpt = None,
    ) -> None:
        """Re-sync this node's message stream to PEER (docs/federation.md §4.1): agree on the next sequence
        numbers with PEER (signed query), mark what it already has delivered, number the rest again. Audited."""
        from federation.runtime import runtime
        from federation.streams import resync_stream
        from node.deps import Principal
        from node.errors import NodeError

        ctx = _context(config)
        actor = Principal(kind="system", id=0, name=f"cli:{_user()}"[:64], roles=("federation_admin",))
        try:
            report = resync_stream(ctx, peer, actor=actor, discard=discard or ())
        except NodeError as exc:
            typer.echo(f"re-sync refused: {exc.code}: {exc.message}", err=True)
            raise typer.Exit(1) from None
        finally:
            runtime(ctx).close()
            ctx.engine.dispose()
        typer.echo(f"re-synced the stream to {peer} ({report.resync_id}): it expects seq {report.receiver_next_seq}; "
                   f"{len(report.renumbered)} message(s) numbered again, {len(report.confirmed)} confirmed "
                   f"delivered, {len(report.discarded)} discarded; next seq {report.next_out_seq}")
        for item in report.renumbered:
            typer.echo(f"  {item['message_id']} {item['type']}: seq {item['from']} -> {item['to']}")
        if report.foreign:
            typer.echo(f"WARNING: {peer} consumed {len(report.foreign)} message(s) under this node's name that this "
                       "node's outbox does not hold (sent with this node's key by someone else, or before this "
                       "node was restored from a backup); if no restore explains them, rotate the key "
                       "(creditnode keys rotate):", err=True)
            for item in report.foreign:
                typer.echo(f"  seq {item['seq']} {item['type']} {item['id']} at {item['received_at']}", err=True)
        typer.echo(json.dumps(report.to_dict(), ensure_ascii=False))


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001
        return "unknown"
