"""`creditnode stats refresh` (count new ledger events now) and `creditnode stats backfill` (rebuild every
counter from the ledger and the audit log: for a database that existed before the statistics, or after a bulk
load that bypassed the node)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]

stats_app = typer.Typer(help="Statistics: the summary counters behind the reports (docs/statistics.md).",
                        no_args_is_help=True)
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="configuration file")]


def _run(config: Path | None, action: str) -> None:
    from node.audit.service import record
    from node.cli import load_settings, operator_principal
    from node.db import make_engine, session_scope
    from node.stats import counting

    settings = load_settings(config)
    engine = make_engine(settings.database_url)
    try:
        result = counting.backfill(engine) if action == "backfill" else counting.refresh(engine, wait=True)
        with session_scope(engine) as session:
            record(session, actor=operator_principal(), action=f"stats.{action}", target_type="statistics",
                   detail={k: v for k, v in result.items() if k != "reviews"} | {"reviews": result.get("reviews")})
    finally:
        engine.dispose()
    typer.echo(json.dumps(result, default=str))


@stats_app.command("refresh")
def refresh(config: ConfigOpt = None) -> None:
    """Count every ledger event not yet counted (what the `stats.refresh` job does each minute)."""
    _run(config, "refresh")


@stats_app.command("backfill")
def backfill(config: ConfigOpt = None) -> None:
    """Rebuild all counters from the ledger and the audit log (re-run it if it was interrupted)."""
    _run(config, "backfill")


def register(app: typer.Typer) -> None:
    app.add_typer(stats_app, name="stats")
