"""`creditnode demo [OPTIONS]` runs the scenario; `creditnode demo restart REGION` brings a node of a running demo
back on its data (added to the node's CLI by `register(app)`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

__all__ = ["register"]

DATA_DIR_HELP = ("an empty directory for the nodes' data (a subdirectory per region: configuration with its "
                 "secrets, SQLite database, keys, node.log); kept after the demo ends. Default: a temporary "
                 "directory, removed at the end")


def register(app: typer.Typer) -> None:
    demo_app = typer.Typer(invoke_without_command=True, no_args_is_help=False,
                           help="Four regional nodes on 127.0.0.1 and a verified cross-region credit transfer.")
    app.add_typer(demo_app, name="demo")

    @demo_app.callback()
    def demo(
        ctx: typer.Context,
        keep_running: Annotated[bool, typer.Option(
            "--keep-running", help="then leave the nodes running until Ctrl-C; the demo watches them, reports a "
                                   "node that dies and keeps the others; `creditnode demo restart REGION` brings "
                                   "it back")] = False,
        export_dir: Annotated[Path | None, typer.Option("--export-dir", help="write the signed artefacts here")]
        = None,
        data_dir: Annotated[Path | None, typer.Option("--data-dir", help=DATA_DIR_HELP)] = None,
        origin: Annotated[str, typer.Option(help="region where the learner's record is deposited")] = "zhejiang",
        destination: Annotated[str, typer.Option(help="region that recognises it")] = "shanghai",
        base_port: Annotated[int | None, typer.Option(help="ports base..base+3 instead of the regions' 8101-8104")]
        = None,
    ) -> None:
        """Run four regional nodes on 127.0.0.1 and show a verified cross-region credit transfer."""
        if ctx.invoked_subcommand is not None:
            return
        from node.demo.scenario import DemoError, run_demo

        try:
            code = run_demo(data_dir=data_dir, keep_running=keep_running, export_dir=export_dir, origin=origin,
                            destination=destination, base_port=base_port)
        except DemoError as exc:
            Console().print(f"[bold red]demo failed:[/bold red] {escape(str(exc))}", highlight=False)
            code = 2
        raise typer.Exit(code)

    @demo_app.command("restart")
    def restart(
        region: Annotated[str, typer.Argument(help="the node to bring back: shanghai, jiangsu, zhejiang or anhui")],
        data_dir: Annotated[Path | None, typer.Option(
            "--data-dir", help="the running demo's --data-dir (default: the one demo running in a temporary "
                               "directory)")] = None,
    ) -> None:
        """Restart one node of a running `creditnode demo --keep-running` on its data (stopped first if it
        still runs); the demo supervises it again."""
        from node.demo.supervisor import RestartRefused, find_running_demo, request_restart

        try:
            root = find_running_demo(data_dir)
            answer = request_restart(root, region)
        except RestartRefused as exc:
            typer.echo(f"restart refused: {exc}", err=True)
            raise typer.Exit(1) from None
        typer.echo(answer["message"], err=not answer["ok"])
        raise typer.Exit(0 if answer["ok"] else 1)
