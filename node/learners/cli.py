"""`creditnode learners activation-code ACCOUNT_NO`: issue a one-time code and print the letter to hand over."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

__all__ = ["register"]

learners_app = typer.Typer(help="Learner accounts.", no_args_is_help=True)
console = Console()


@learners_app.command("activation-code")
def activation_code(
    account_no: Annotated[str, typer.Argument(help="the learner's account number, or their ID number (checked "
                                                    "on the ID card at the outlet)")],
    id_type: Annotated[str, typer.Option(help="the ID document's type, when an ID number is given")] = "resident_id",
    config: Annotated[Path | None, typer.Option("--config", "-c", help="configuration file")] = None,
) -> None:
    """Issue a one-time activation code (or a password-reset code, if the account has a password) and print it
    with a printable letter. Hand it over only after checking the person's ID card. Earlier codes stop working."""
    from sqlmodel import select

    from node.audit.service import record
    from node.cli import load_settings, operator_principal
    from node.db import make_engine, session_scope
    from node.learners.service import activation_letter, issue_activation_code
    from node.models import Learner
    from node.security.fields import FieldCipher, key_bytes

    settings = load_settings(config)
    actor = operator_principal()
    engine = make_engine(settings.database_url)
    try:
        with session_scope(engine) as session:
            learner = session.exec(select(Learner).where(Learner.account_no == account_no.strip())).first()
            if learner is None:
                learner = _by_id_number(session, settings, id_type, account_no)
            if learner is None:
                console.print("[red]error:[/red] no learner has this account number or ID number")
                raise typer.Exit(2)
            issued = issue_activation_code(
                session, learner=learner, secret=key_bytes(settings.security.token_secret.get_secret_value()),
                ttl_days=settings.accounts.activation_code_ttl_days, issued_by=actor.name)
            record(session, actor=actor, action="learner.activation_code", target_type="learner",
                   target_id=learner.id, detail={"purpose": issued.purpose, "expires_at": issued.expires_at.isoformat()})
            name = FieldCipher.from_settings(settings).decrypt(learner.name_cipher, learner.key_id)
    finally:
        engine.dispose()
    console.print(f"code: [bold]{issued.code}[/bold]  ({issued.purpose}, valid until "
                  f"{issued.expires_at.isoformat()})")
    console.print()
    console.print(activation_letter(settings, issued, name=name), markup=False, highlight=False)


def _by_id_number(session, settings, id_type: str, number: str):
    """The learner holding this ID number, or None (also for a malformed number)."""
    from node.errors import InvalidIdNumber
    from node.learners.service import learner_by_blind
    from node.security.fields import BlindIndex
    from node.security.idnumbers import normalise_id_number

    try:
        normalised = normalise_id_number(id_type, number)
    except InvalidIdNumber:
        return None
    return learner_by_blind(session, BlindIndex.from_settings(settings)(id_type, normalised))


def register(app: typer.Typer) -> None:
    app.add_typer(learners_app, name="learners")
