"""`commerce license ...`: support commands (look up, activations, revoke, re-issue,
beta opt-in).

Output shows key hints and masked addresses only. A key typed in for a look-up is
hashed and never printed back. Changes name the operator (`--actor`, default the
local user) in the audit trail and ask first (`--yes` skips the question).
"""

from __future__ import annotations

import dataclasses
import getpass
from typing import TYPE_CHECKING, Annotated

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

if TYPE_CHECKING:
    from commerce.licensing.support import LicenseSupport

license_app = OperatorTyper(
    help="Support tools for licenses: look-up, activations, revoke, re-issue, beta opt-in.",
    no_args_is_help=True,
)

Actor = Annotated[str, typer.Option("--actor", help="Who does this (for the audit trail).")]
LicenseId = Annotated[str, typer.Argument(help="lic_... (see `license lookup`)")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts).")]


def _support() -> LicenseSupport:
    return container().license_support


def _default_actor() -> str:
    try:
        return "support:" + getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return "support"


@license_app.command("lookup")
def lookup(
    key: Annotated[str | None, typer.Option("--key", help="A key the buyer sent in.")] = None,
    email: Annotated[str | None, typer.Option("--email", help="The buyer's address.")] = None,
    as_json: AsJson = False,
) -> None:
    """Find licenses by key or by e-mail address (shows hints, never keys)."""
    if (key is None) == (email is None):
        typer.secho("give exactly one of --key or --email", err=True, fg="red")
        raise typer.Exit(code=ExitCode.USAGE)
    support = _support()
    try:
        found = support.by_key(key) if key is not None else support.by_email(email or "")
    except CommerceError as error:
        fail(error)
    if as_json:
        print_json([dataclasses.asdict(summary) for summary in found])
    elif found:
        grid = table("license", "key", "status", "gen", "order", "buyer", "activations", "since")
        for s in found:
            grid.add_row(
                text(s.license_id),
                text(f"…-{s.key_hint}"),
                text(s.status + (f" ({s.status_reason})" if s.status_reason else "")),
                str(s.generation),
                text(f"{s.order_id} ({s.order_state or 'missing'})"),
                text(s.email_masked or "-"),
                f"{s.activations_used}/{s.activation_limit}",
                f"{s.created_at:%Y-%m-%d}",
            )
        print_table(grid)
    else:
        typer.echo("no license found")
    if not found:
        raise typer.Exit(code=ExitCode.FAILED)


@license_app.command("activations")
def activations(license_id: LicenseId, as_json: AsJson = False) -> None:
    """The machines a license is active on."""
    try:
        found = _support().activations(license_id)
    except CommerceError as error:
        fail(error)
    if as_json:
        print_json(
            [
                {
                    "id": a.id,
                    "label": a.label,
                    "activated_at": a.created_at.isoformat(),
                    "last_seen_at": a.last_seen_at.isoformat(),
                }
                for a in found
            ]
        )
        return
    if not found:
        typer.echo("no activations")
        return
    grid = table("activation", "label", "activated (UTC)", "last seen (UTC)")
    for a in found:
        grid.add_row(
            text(a.id),
            text(a.label or "-"),
            f"{a.created_at:%Y-%m-%d %H:%M}",
            f"{a.last_seen_at:%Y-%m-%d %H:%M}",
        )
    print_table(grid)


@license_app.command("reset-activations")
def reset_activations(
    license_id: LicenseId, actor: Actor = "", yes: Annotated[bool, Yes] = False
) -> None:
    """Free every activation slot (the buyer re-activates the machines in use)."""
    built = container()
    confirm(built, f"Free every activation of {license_id}", yes=yes, always=True)
    try:
        removed = built.license_support.reset_activations(
            license_id, actor=actor or _default_actor()
        )
    except CommerceError as error:
        fail(error)
    typer.echo(f"{removed} activation(s) removed from {license_id}")


@license_app.command("revoke")
def revoke(
    license_id: LicenseId,
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the audit trail).")],
    actor: Actor = "",
    yes: Annotated[bool, Yes] = False,
) -> None:
    """Revoke a license: validation answers REVOKED from the next call on."""
    built = container()
    confirm(built, f"Revoke {license_id} ({reason})", yes=yes, always=True)
    try:
        license_ = built.license_support.revoke(
            license_id, reason=reason, actor=actor or _default_actor()
        )
    except CommerceError as error:
        fail(error)
    typer.echo(f"{license_.id} revoked ({reason})")


@license_app.command("reissue")
def reissue(
    license_id: LicenseId,
    actor: Actor = "",
    keep_activations: Annotated[
        bool, typer.Option("--keep-activations", help="Keep the machines' slots.")
    ] = False,
    yes: Annotated[bool, Yes] = False,
) -> None:
    """Issue a new key (the old one stops working) and e-mail it to the buyer."""
    built = container()
    confirm(
        built, f"Re-issue the key of {license_id}? The old key stops working", yes=yes, always=True
    )
    try:
        result = built.license_support.reissue(
            license_id, actor=actor or _default_actor(), keep_activations=keep_activations
        )
    except CommerceError as error:
        fail(error)
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


@license_app.command("beta")
def beta(
    license_id: LicenseId,
    on: Annotated[
        bool | None,
        typer.Option("--on/--off", help="Opt the license in to beta updates, or out again."),
    ] = None,
    actor: Actor = "",
    yes: Annotated[bool, Yes] = False,
) -> None:
    """Let a license get updates from the beta channel (off by default)."""
    if on is None:
        typer.secho("give --on or --off", err=True, fg="red")
        raise typer.Exit(code=ExitCode.USAGE)
    built = container()
    what = "Opt {} in to beta updates" if on else "Opt {} out of beta updates"
    confirm(built, what.format(license_id), yes=yes, always=True)
    try:
        changed = built.license_support.set_beta(license_id, on=on, actor=actor or _default_actor())
    except CommerceError as error:
        fail(error)
    state = "on" if on else "off"
    typer.echo(f"{license_id}: beta {state}" + ("" if changed else " (already)"))
