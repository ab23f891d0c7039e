"""`commerce keys rotate-pepper`: the license-key pepper migration (see commerce.rotation
and docs/runbooks/secret-rotation.md).

The new pepper is read from an environment variable named on the command line, never
from an argument (shell history, process lists); nothing secret is printed.
"""

from __future__ import annotations

import getpass
import os
from typing import Annotated

import typer

from commerce.cli_support import ExitCode, OperatorTyper, Yes, confirm, container
from commerce.errors import CommerceError

keys_app = OperatorTyper(help="Key material migrations.", no_args_is_help=True)


@keys_app.command("rotate-pepper")
def rotate_pepper(
    new_pepper_env: Annotated[
        str,
        typer.Option(
            "--new-pepper-env",
            help="Name of the environment variable holding the NEW pepper (base64url).",
        ),
    ] = "NEW_LICENSE_KEY_PEPPER",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would change; change nothing.")
    ] = False,
    actor: Annotated[str, typer.Option("--actor", help="Who does this (audit trail).")] = "",
    yes: Annotated[bool, Yes] = False,
) -> None:
    """Re-hash every license key and re-key every customer under a new pepper."""
    from commerce.keys import decode_secret

    value = os.environ.get(new_pepper_env, "")
    if not value:
        typer.secho(f"error: set {new_pepper_env} to the new pepper", err=True, fg="red")
        raise typer.Exit(code=ExitCode.CONFIGURATION)
    built = container()
    try:
        new_pepper = decode_secret(value, new_pepper_env)
        rotation = built.pepper_rotation(new_pepper)
    except (CommerceError, ValueError) as error:
        detail = error.detail if isinstance(error, CommerceError) else str(error)
        typer.secho(f"error: {detail}", err=True, fg="red")
        raise typer.Exit(code=ExitCode.CONFIGURATION) from None
    if not dry_run:
        confirm(built, "Re-hash every license key and re-key every customer", yes=yes)
    report = rotation.run(actor=actor or getpass.getuser(), dry_run=dry_run)
    verb = "would change" if dry_run else "changed"
    typer.echo(
        f"licenses: {report.licenses_rehashed} {verb}, {report.licenses_already_done} already "
        f"done; customers: {report.customers_moved} {verb}, {report.customers_already_done} "
        f"already done; references rewritten: {report.references_rewritten}"
    )
    for problem in report.problems:
        typer.secho(f"problem: {problem}", err=True, fg="yellow")
    if report.problems:
        raise typer.Exit(code=ExitCode.FAILED)
