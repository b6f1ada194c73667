"""`creditnode jobs list` and `creditnode jobs run NAME` (added to the node's CLI by `register(app)`)."""

from __future__ import annotations

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
