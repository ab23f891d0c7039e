"""`commerce reconcile`: fulfil paid Checkout Sessions whose webhook was missed.

Runs against the running `make dev` stack, or whatever the environment configures
(Google Cloud with default credentials and the live Stripe key); see
`commerce.cli_support`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from commerce.cli_support import ExitCode, Yes, confirm, container, fail, print_json
from commerce.errors import CommerceError


def reconcile(
    days: Annotated[
        int | None,
        typer.Option(
            "--days",
            min=1,
            max=30,
            metavar="N",
            help="Look back this many days (RECONCILE_LOOKBACK_DAYS).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    yes: Annotated[bool, Yes] = False,
) -> None:
    """List recent Checkout Sessions in Stripe and fulfil every paid one without an order."""
    built = container()
    confirm(built, "Fulfil paid Checkout Sessions that have no order", yes=yes)
    try:
        report = built.reconciler.run(days)
    except CommerceError as error:
        fail(error)
    if as_json:
        print_json(report.as_dict())
    else:
        typer.echo(
            f"last {report.days} day(s): {report.examined} sessions examined, {report.paid} paid; "
            f"{report.repaired} repaired, {report.already_fulfilled} already fulfilled, "
            f"{report.blocked} blocked (refunded/revoked/failed), {report.failed} failed"
        )
        for session_id in report.repaired_sessions:
            typer.echo(f"  repaired {session_id}")
    if report.failed:
        raise typer.Exit(code=ExitCode.FAILED)
