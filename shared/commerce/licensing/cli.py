"""`commerce license ...`: support commands (look up, activations, revoke, re-issue).

Output shows key hints and masked addresses only. A key typed in for a look-up is
hashed and never printed back. Changes name the operator (`--actor`, default the
local user) in the audit trail.
"""

from __future__ import annotations

import getpass
from typing import TYPE_CHECKING, Annotated

import typer

from commerce.errors import CommerceError

if TYPE_CHECKING:
    from commerce.licensing.support import LicenseSummary, LicenseSupport

license_app = typer.Typer(
    help="Support tools for licenses: look-up, activations, revoke, re-issue.",
    no_args_is_help=True,
)

Actor = Annotated[str, typer.Option("--actor", help="Who does this (for the audit trail).")]


def _support() -> LicenseSupport:
    from commerce.bootstrap import get_container

    return get_container().license_support


def _fail(error: CommerceError) -> typer.Exit:
    typer.secho(f"error: {error.detail} ({error.code})", err=True, fg="red")
    return typer.Exit(code=1)


def _default_actor() -> str:
    try:
        return "support:" + getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return "support"


def _print_summary(summary: LicenseSummary) -> None:
    typer.echo(
        f"{summary.license_id}  key …-{summary.key_hint}  {summary.status}"
        + (f" ({summary.status_reason})" if summary.status_reason else "")
        + f"  generation {summary.generation}"
    )
    typer.echo(
        f"  order {summary.order_id} ({summary.order_state or 'missing'})"
        f"  buyer {summary.email_masked or '-'}"
        f"  activations {summary.activations_used}/{summary.activation_limit}"
        f"  since {summary.created_at:%Y-%m-%d}"
    )


@license_app.command("lookup")
def lookup(
    key: Annotated[str | None, typer.Option("--key", help="A key the buyer sent in.")] = None,
    email: Annotated[str | None, typer.Option("--email", help="The buyer's address.")] = None,
) -> None:
    """Find licenses by key or by e-mail address (shows hints, never keys)."""
    if (key is None) == (email is None):
        typer.secho("give exactly one of --key or --email", err=True, fg="red")
        raise typer.Exit(code=2)
    try:
        found = _support().by_key(key) if key is not None else _support().by_email(email or "")
    except CommerceError as error:
        raise _fail(error) from None
    if not found:
        typer.echo("no license found")
        raise typer.Exit(code=1)
    for summary in found:
        _print_summary(summary)


@license_app.command("activations")
def activations(license_id: Annotated[str, typer.Argument(help="lic_...")]) -> None:
    """The machines a license is active on."""
    try:
        found = _support().activations(license_id)
    except CommerceError as error:
        raise _fail(error) from None
    if not found:
        typer.echo("no activations")
    for activation in found:
        typer.echo(
            f"{activation.id}  {activation.label or '-':<24}"
            f"  activated {activation.created_at:%Y-%m-%d %H:%M}"
            f"  last seen {activation.last_seen_at:%Y-%m-%d %H:%M}"
        )


@license_app.command("reset-activations")
def reset_activations(
    license_id: Annotated[str, typer.Argument(help="lic_...")],
    actor: Actor = "",
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
) -> None:
    """Free every activation slot (the buyer re-activates the machines in use)."""
    if not yes:
        typer.confirm(f"Free every activation of {license_id}?", abort=True)
    try:
        removed = _support().reset_activations(license_id, actor=actor or _default_actor())
    except CommerceError as error:
        raise _fail(error) from None
    typer.echo(f"{removed} activation(s) removed from {license_id}")


@license_app.command("revoke")
def revoke(
    license_id: Annotated[str, typer.Argument(help="lic_...")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the audit trail).")],
    actor: Actor = "",
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
) -> None:
    """Revoke a license: validation answers REVOKED from the next call on."""
    if not yes:
        typer.confirm(f"Revoke {license_id} ({reason})?", abort=True)
    try:
        license_ = _support().revoke(license_id, reason=reason, actor=actor or _default_actor())
    except CommerceError as error:
        raise _fail(error) from None
    typer.echo(f"{license_.id} revoked ({reason})")


@license_app.command("reissue")
def reissue(
    license_id: Annotated[str, typer.Argument(help="lic_...")],
    actor: Actor = "",
    keep_activations: Annotated[
        bool, typer.Option("--keep-activations", help="Keep the machines' slots.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
) -> None:
    """Issue a new key (the old one stops working) and e-mail it to the buyer."""
    if not yes:
        typer.confirm(f"Re-issue the key of {license_id}? The old key stops working.", abort=True)
    try:
        result = _support().reissue(
            license_id, actor=actor or _default_actor(), keep_activations=keep_activations
        )
    except CommerceError as error:
        raise _fail(error) from None
    typer.echo(
        f"{result.license_id}: new key …-{result.key_hint} (generation {result.generation}), "
        f"{result.activations_reset} activation(s) reset"
    )
    if result.email_job_id is None:
        typer.echo("no buyer address on file: give the buyer the key another way")
    elif result.enqueued:
        typer.echo(f"e-mail job {result.email_job_id} enqueued")
    else:
        typer.echo(f"e-mail job {result.email_job_id} pending (the sweeper will send it)")
