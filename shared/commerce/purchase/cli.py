"""`commerce reconcile`: fulfil paid Checkout Sessions whose webhook was missed (and
apply missed refunds and disputes); `commerce orders ...`: orders that need a person
(no usable buyer e-mail); `commerce fraud-cleared`: lift an early fraud warning's
suspension after review.

Runs against the running `make dev` stack, or whatever the environment configures
(Google Cloud with default credentials and the live Stripe key); see
`commerce.cli_support`.
"""

from __future__ import annotations

import getpass
from typing import Annotated

import typer

from commerce.cli_support import (
    ExitCode,
    OperatorTyper,
    Yes,
    confirm,
    container,
    fail,
    print_json,
    print_table,
    table,
    text,
)
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
    """Repair missed webhooks: fulfil paid sessions without an order, apply refunds and disputes."""
    built = container()
    confirm(
        built,
        "Fulfil paid Checkout Sessions that have no order and apply missed refunds and disputes",
        yes=yes,
    )
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
            f"{report.blocked} blocked (refunded/revoked/failed), {report.rejected} rejected, "
            f"{report.failed} failed; {report.refunds_examined} refunds and "
            f"{report.disputes_examined} disputes examined, {report.refunds_applied} refunds "
            f"and {report.disputes_applied} dispute changes applied"
        )
        for session_id in report.repaired_sessions:
            typer.echo(f"  repaired {session_id}")
        for applied in report.applied:
            typer.echo(f"  applied {applied}")
    if report.failed:
        raise typer.Exit(code=ExitCode.FAILED)


orders_app = OperatorTyper(
    help="Orders that need a person (no usable buyer e-mail).", no_args_is_help=True
)
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts).")]


@orders_app.command("attention")
def attention(as_json: AsJson = False) -> None:
    """Paid, fulfilled orders without a usable e-mail address (newest first)."""
    orders = container().order_attention.pending()
    if as_json:
        print_json(
            [
                {
                    "id": order.id,
                    "state": order.state.value,
                    "needs_attention": order.needs_attention,
                    "license_id": order.license_id,
                    "amount_total": order.amount_total,
                    "currency": order.currency,
                    "created_at": order.created_at.isoformat(),
                    "updated_at": order.updated_at.isoformat(),
                }
                for order in orders
            ]
        )
        return
    if not orders:
        typer.echo("no orders need attention")
        return
    grid = table("order", "reason", "state", "license", "amount", "created (UTC)")
    for order in orders:
        amount = (
            f"{order.amount_total / 100:.2f} {(order.currency or '').upper()}"
            if order.amount_total is not None
            else "-"
        )
        grid.add_row(
            text(order.id),
            text(order.needs_attention or ""),
            order.state.value,
            text(order.license_id or "-"),
            amount,
            f"{order.created_at:%Y-%m-%d %H:%M}",
        )
    print_table(grid)


@orders_app.command("set-email")
def set_email(
    order_id: Annotated[str, typer.Argument(help="The order's id (see `orders attention`)")],
    email: Annotated[str, typer.Argument(help="The buyer's e-mail address")],
    yes: Annotated[bool, Yes] = False,
) -> None:
    """Set the buyer's address of a flagged order and send its e-mail (once)."""
    built = container()
    confirm(built, f"Set the e-mail address of order {order_id} and send its e-mail", yes=yes)
    try:
        done = built.order_attention.set_email(order_id, email)
    except CommerceError as error:
        fail(error)
    queued = "queued" if done.enqueued else "saved (the sweeper will queue it)"
    typer.echo(
        f"{done.order_id}: address {done.email_masked} set; e-mail {done.email_job_id} {queued}"
    )


def fraud_cleared(
    session_id: Annotated[str, typer.Argument(help="cs_... (the order id)")],
    actor: Annotated[
        str, typer.Option("--actor", help="Who does this (for the audit trail).")
    ] = "",
    yes: Annotated[bool, Yes] = False,
) -> None:
    """Lift the suspension of an early fraud warning after review (the buyer is genuine)."""
    built = container()
    confirm(built, f"Lift the fraud-warning suspension of {session_id}", yes=yes, always=True)
    try:
        change = built.fulfillment.clear_fraud_warning(session_id, actor=actor or _default_actor())
    except CommerceError as error:
        fail(error)
    if change.outcome.value == "ignored":
        typer.echo(f"{session_id}: no early fraud warning recorded; nothing changed")
        raise typer.Exit(code=ExitCode.FAILED)
    typer.echo(f"{session_id}: fraud warning cleared; the license answers again")


def _default_actor() -> str:
    try:
        return "support:" + getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return "support"
