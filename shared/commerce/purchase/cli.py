"""`commerce reconcile`: fulfil paid Checkout Sessions whose webhook was missed.

Runs against whatever the environment configures (the local stack with `make dev`'s
variables, or Google Cloud with default credentials and the live Stripe key).
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from commerce.errors import CommerceError


def reconcile(
    days: Annotated[
        int | None,
        typer.Option(
            "--days", min=1, max=30, help="Look back this many days (RECONCILE_LOOKBACK_DAYS)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """List recent Checkout Sessions in Stripe and fulfil every paid one without an order."""
    from commerce.bootstrap import get_container

    try:
        report = get_container().reconciler.run(days)
    except CommerceError as error:
        typer.secho(f"error: {error.detail} ({error.code})", err=True, fg="red")
        raise typer.Exit(code=1) from None
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        typer.echo(
            f"last {report.days} day(s): {report.examined} sessions examined, {report.paid} paid; "
            f"{report.repaired} repaired, {report.already_fulfilled} already fulfilled, "
            f"{report.blocked} blocked (refunded/revoked/failed), {report.failed} failed"
        )
        for session_id in report.repaired_sessions:
            typer.echo(f"  repaired {session_id}")
    if report.failed:
        raise typer.Exit(code=1)
