"""`creditnode standards load FILE...`: load standards bundles (config/standards/*.json) into the catalogue and
the rules. Idempotent; loaded rules enter approved, with the loader recorded as a system action."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["load_files", "register"]

standards_app = typer.Typer(help="Standards: catalogue, framework levels, conversion rules.", no_args_is_help=True)


def load_files(engine, files: list[Path]) -> list[tuple[Path, dict[str, int]]]:
    """Load the files in order (the framework before the bundles that use it), all in one transaction."""
    from node.db import session_scope
    from node.standards.service import load_bundle

    results = []
    with session_scope(engine) as session:
        for path in files:
            results.append((path, load_bundle(session, json.loads(path.read_text(encoding="utf-8")))))
    return results


@standards_app.command("load")
def load_command(
    files: Annotated[list[Path], typer.Argument(help="standards bundle files", exists=True, dir_okay=False,
                                                readable=True)],
    config: Annotated[Path | None, typer.Option("--config", "-c", help="configuration file")] = None,
) -> None:
    """Load standards bundles (framework mapping, catalogue, rules)."""
    from node.cli import load_settings
    from node.db import make_engine
    from node.errors import NodeError

    settings = load_settings(config)
    engine = make_engine(settings.database_url)
    try:
        results = load_files(engine, files)
    except (NodeError, ValueError) as exc:
        typer.echo(f"error: {getattr(exc, 'message', exc)}", err=True)
        for problem in (getattr(exc, "detail", None) or {}).get("errors", []):
            typer.echo(f"  {problem}", err=True)
        raise typer.Exit(2) from None
    finally:
        engine.dispose()
    for path, counts in results:
        typer.echo(f"{path}: catalogue {counts['catalogue_created']} new, {counts['catalogue_unchanged']} unchanged; "
                   f"rules {counts['rules_created']} new, {counts['rules_unchanged']} unchanged")


def register(app: typer.Typer) -> None:
    app.add_typer(standards_app, name="standards")
