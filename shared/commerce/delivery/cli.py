"""`commerce release ...` and `commerce emails ...`: operator commands of delivery.

They run against whatever the environment configures (the local emulators with
`make dev`'s variables, or Google Cloud with default credentials).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from commerce.errors import CommerceError

release_app = typer.Typer(help="Publish, list, yank and verify releases.", no_args_is_help=True)
emails_app = typer.Typer(help="Inspect and re-send e-mail jobs.", no_args_is_help=True)


def _fail(error: CommerceError) -> typer.Exit:
    typer.secho(f"error: {error.detail} ({error.code})", err=True, fg="red")
    return typer.Exit(code=1)


@release_app.command("publish")
def publish(
    files: Annotated[list[Path], typer.Argument(help="genx-<version>-<platform>.<ext> files")],
    version: Annotated[str, typer.Option("--version", help="Semantic version, e.g. 1.2.0")],
    channel: Annotated[str, typer.Option("--channel", help="stable or beta")] = "stable",
    notes_file: Annotated[
        Path | None,
        typer.Option(
            "--notes-file",
            help="Plain-text release notes, shown by the plugin's update check.",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ] = None,
) -> None:
    """Upload files, verify them, write the release record and the signed manifest."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TransferSpeedColumn,
    )

    from commerce.bootstrap import get_container
    from commerce.delivery.publishing import LocalFile

    container = get_container()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
    ) as bar:

        def progress_for(local: LocalFile):  # type: ignore[no-untyped-def]
            task = bar.add_task(local.path.name, total=local.size)
            return lambda n: bar.advance(task, n)

        try:
            release = container.publisher.publish(
                files,
                version,
                channel,
                notes=notes_file.read_text(encoding="utf-8") if notes_file else None,
                progress=progress_for,
            )
        except CommerceError as error:
            raise _fail(error) from None
    typer.echo(f"published {release.version} ({release.channel}), manifest signed")
    for file in release.files:
        typer.echo(f"  {file.sha256}  {file.name}  {file.size} bytes")


@release_app.command("list")
def list_releases() -> None:
    """All releases, newest first."""
    from commerce.bootstrap import get_container

    releases = sorted(
        get_container().releases.all(), key=lambda r: r.semver.sort_key(), reverse=True
    )
    if not releases:
        typer.echo("no releases")
    for release in releases:
        state = "YANKED" if release.yanked else "live"
        platforms = ", ".join(f.platform for f in release.files)
        typer.echo(
            f"{release.version:<16} {release.channel:<7} {state:<7} "
            f"{release.published_at:%Y-%m-%d}  {platforms}"
        )


@release_app.command("yank")
def yank(version: str) -> None:
    """Hide a release from downloads (its files and manifest stay for verification)."""
    from commerce.bootstrap import get_container

    try:
        release = get_container().publisher.yank(version)
    except CommerceError as error:
        raise _fail(error) from None
    typer.echo(f"yanked {release.version}")


@release_app.command("verify")
def verify_file(
    file: Path,
    public_key: Annotated[
        str | None,
        typer.Option(help="Ed25519 public key (base64url); default: the shop's own"),
    ] = None,
) -> None:
    """Check FILE against its release's signed manifest (exit 1 on mismatch)."""
    from commerce.bootstrap import get_container
    from commerce.signing import public_key_from_b64

    key = public_key_from_b64(public_key) if public_key else None
    try:
        ok, reason = get_container().publisher.verify_file(file, key)
    except CommerceError as error:
        raise _fail(error) from None
    typer.secho(("OK: " if ok else "MISMATCH: ") + reason, fg="green" if ok else "red")
    if not ok:
        raise typer.Exit(code=1)


@emails_app.command("failed")
def failed() -> None:
    """E-mail jobs that failed permanently or exhausted their attempts."""
    from commerce.bootstrap import get_container

    jobs = get_container().email_worker.failed()
    if not jobs:
        typer.echo("no failed e-mails")
    for job in jobs:
        typer.echo(
            f"{job.id}  {job.state.value:<6} {job.kind.value:<11} attempts={job.attempts} "
            f"{job.updated_at:%Y-%m-%d %H:%M}  {job.last_error or ''}"
        )


@emails_app.command("resend")
def resend(
    job_id: str,
    force: Annotated[bool, typer.Option(help="Also re-send a job that was sent")] = False,
) -> None:
    """Reset a failed/dead job and queue it again (new task name)."""
    from commerce.bootstrap import get_container

    try:
        job = get_container().email_worker.resend(job_id, force=force)
    except CommerceError as error:
        raise _fail(error) from None
    typer.echo(f"queued {job.id} again")


@emails_app.command("sweep")
def sweep() -> None:
    """Re-enqueue jobs left pending or sending too long (what the scheduler runs)."""
    from commerce.bootstrap import get_container

    requeued = get_container().email_worker.sweep()
    typer.echo(f"re-enqueued {len(requeued)} job(s)")
