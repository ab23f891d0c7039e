"""`commerce release ...` and `commerce emails ...`: operator commands of delivery.

They run against the running `make dev` stack, or whatever the environment configures
(Google Cloud with default credentials); see `commerce.cli_support`.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from commerce.cli_support import (
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

release_app = OperatorTyper(help="Publish, list, yank and verify releases.", no_args_is_help=True)
emails_app = OperatorTyper(help="Inspect and re-send e-mail jobs.", no_args_is_help=True)

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts).")]


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
            metavar="FILE",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ] = None,
    yes: Annotated[bool, Yes] = False,
) -> None:
    """Upload files, verify them, write the release record and the signed manifest."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TransferSpeedColumn,
    )

    from commerce.releases.service import LocalFile

    built = container()
    confirm(built, f"Publish {version} ({channel}) from {len(files)} file(s)", yes=yes)
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
            release = built.publisher.publish(
                files,
                version,
                channel,
                notes=notes_file.read_text(encoding="utf-8") if notes_file else None,
                progress=progress_for,
            )
        except CommerceError as error:
            fail(error)
    typer.echo(f"published {release.version} ({release.channel}), manifest signed")
    grid = table("sha256", "file", "bytes")
    for file in release.files:
        grid.add_row(file.sha256, text(file.name), str(file.size))
    print_table(grid)


@release_app.command("list")
def list_releases(as_json: AsJson = False) -> None:
    """All releases, newest first."""
    releases = sorted(container().releases.all(), key=lambda r: r.semver.sort_key(), reverse=True)
    if as_json:
        print_json(
            [
                {
                    "version": r.version,
                    "channel": r.channel,
                    "state": "yanked" if r.yanked else "live",
                    "published_at": r.published_at.isoformat(),
                    "platforms": [f.platform for f in r.files],
                }
                for r in releases
            ]
        )
        return
    if not releases:
        typer.echo("no releases")
        return
    grid = table("version", "channel", "state", "published", "platforms")
    for release in releases:
        grid.add_row(
            text(release.version),
            text(release.channel),
            "YANKED" if release.yanked else "live",
            f"{release.published_at:%Y-%m-%d}",
            text(", ".join(f.platform for f in release.files)),
        )
    print_table(grid)


@release_app.command("yank")
def yank(
    version: Annotated[str, typer.Argument(help="The version to withdraw, e.g. 1.2.0")],
    yes: Annotated[bool, Yes] = False,
) -> None:
    """Hide a release from downloads (its files and manifest stay for verification)."""
    built = container()
    confirm(built, f"Yank release {version}", yes=yes)
    try:
        release = built.publisher.yank(version)
    except CommerceError as error:
        fail(error)
    typer.echo(f"yanked {release.version}")


@release_app.command("verify")
def verify_file(
    file: Annotated[Path, typer.Argument(help="A downloaded release file")],
    public_key: Annotated[
        str | None,
        typer.Option(help="Ed25519 public key (base64url); default: the shop's own"),
    ] = None,
) -> None:
    """Check FILE against its release's signed manifest (exit 1 on mismatch)."""
    from commerce.signing import public_key_from_b64

    key = public_key_from_b64(public_key) if public_key else None
    try:
        ok, reason = container().publisher.verify_file(file, key)
    except CommerceError as error:
        fail(error)
    typer.secho(("OK: " if ok else "MISMATCH: ") + reason, fg="green" if ok else "red")
    if not ok:
        raise typer.Exit(code=1)


@emails_app.command("failed")
def failed(as_json: AsJson = False) -> None:
    """E-mail jobs that failed permanently or exhausted their attempts."""
    jobs = container().email_worker.failed()
    if as_json:
        print_json(
            [
                {
                    "id": job.id,
                    "state": job.state.value,
                    "kind": job.kind.value,
                    "attempts": job.attempts,
                    "updated_at": job.updated_at.isoformat(),
                    "last_error": job.last_error,
                }
                for job in jobs
            ]
        )
        return
    if not jobs:
        typer.echo("no failed e-mails")
        return
    grid = table("job", "state", "kind", "attempts", "updated (UTC)", "last error")
    for job in jobs:
        grid.add_row(
            text(job.id),
            job.state.value,
            job.kind.value,
            str(job.attempts),
            f"{job.updated_at:%Y-%m-%d %H:%M}",
            text(job.last_error or ""),
        )
    print_table(grid)


@emails_app.command("pending")
def pending(as_json: AsJson = False) -> None:
    """E-mail jobs not delivered yet (waiting for a retry, or sending now), with the
    last error and the next attempt, soonest first."""
    built = container()
    jobs = built.email_worker.waiting()
    now = built.clock.now()
    if as_json:
        print_json(
            [
                {
                    "id": job.id,
                    "state": job.state.value,
                    "kind": job.kind.value,
                    "attempts": job.attempts,
                    "last_error": job.last_error,
                    "next_attempt_at": job.next_attempt_at.isoformat()
                    if job.next_attempt_at
                    else None,
                    "updated_at": job.updated_at.isoformat(),
                }
                for job in jobs
            ]
        )
        return
    if not jobs:
        typer.echo("no e-mails waiting")
        return
    grid = table("job", "state", "kind", "attempts", "next attempt (UTC)", "last error")
    for job in jobs:
        grid.add_row(
            text(job.id),
            job.state.value,
            job.kind.value,
            str(job.attempts),
            _next_attempt(job.state.value, job.next_attempt_at, now),
            text(job.last_error or ""),
        )
    print_table(grid)


def _next_attempt(state: str, due: datetime | None, now: datetime) -> str:
    if state == "sending":
        return "in progress"
    if due is None:
        return "unknown (the sweeper queues it)"
    seconds = int((due - now).total_seconds())
    when = f"{due:%Y-%m-%d %H:%M:%S}"
    return f"{when} (in {seconds} s)" if seconds >= 0 else f"{when} (overdue {-seconds} s)"


@emails_app.command("resend")
def resend(
    job_id: Annotated[str, typer.Argument(help="The e-mail job's id (see `emails failed`)")],
    force: Annotated[bool, typer.Option(help="Also re-send a job that was sent")] = False,
    yes: Annotated[bool, Yes] = False,
) -> None:
    """Reset a failed/dead job and queue it again (new task name)."""
    built = container()
    confirm(built, f"Send e-mail job {job_id} again", yes=yes)
    try:
        job = built.email_worker.resend(job_id, force=force)
    except CommerceError as error:
        fail(error)
    typer.echo(f"queued {job.id} again")


@emails_app.command("sweep")
def sweep(yes: Annotated[bool, Yes] = False) -> None:
    """Re-enqueue jobs left pending or sending too long (what the scheduler runs)."""
    built = container()
    confirm(built, "Re-enqueue stuck e-mail jobs", yes=yes)
    requeued = built.email_worker.sweep()
    typer.echo(f"re-enqueued {len(requeued)} job(s)")
