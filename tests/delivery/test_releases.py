"""Release naming, versions, the signed manifest, publishing and the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from commerce.bootstrap import Container, use_container
from commerce.cli import app
from commerce.domain.releases import (
    InvalidRelease,
    Release,
    ReleaseFile,
    SemVer,
    latest,
    manifest_bytes,
    manifest_for,
    parse_file_name,
)
from commerce.releases.service import (
    ManifestSignatureInvalid,
    ReleaseExists,
    verified_manifest,
)
from commerce.secrets import EnvSecrets
from commerce.signing import Signer, public_key_from_b64
from tests.delivery.conftest import SAMPLE_VERSION, artifact_files
from tests.support import factories

DAY = datetime(2026, 3, 1, tzinfo=UTC)


# -- pure rules ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("genx-1.0.0-linux-x86_64.tar.gz", ("1.0.0", "linux-x86_64")),
        ("genx-2.1.3-windows-x86_64.zip", ("2.1.3", "windows-x86_64")),
        ("genx-1.0.0-beta.2-macos-universal.zip", ("1.0.0-beta.2", "macos-universal")),
    ],
)
def test_file_names_follow_product_version_platform_extension(
    name: str, expected: tuple[str, str]
) -> None:
    assert parse_file_name(name) == expected


@pytest.mark.parametrize(
    "name",
    ["genx-1.0-linux.zip", "other-1.0.0-linux.zip", "genx-1.0.0-linux.rar", "genx-1.0.0.zip"],
)
def test_badly_named_files_are_refused(name: str) -> None:
    with pytest.raises(InvalidRelease):
        parse_file_name(name)


def test_versions_sort_semantically_with_prereleases_first() -> None:
    ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0", "1.2.0",
               "1.10.0"]  # fmt: skip
    keys = [SemVer.parse(v).sort_key() for v in ordered]
    assert keys == sorted(keys)


def release_record(version: str, channel: str = "stable", yanked: bool = False) -> Release:
    return Release(
        id=version, version=version, channel=channel, files=(), published_at=DAY, yanked=yanked
    )


def test_latest_skips_yanked_releases_and_other_channels() -> None:
    releases = [
        release_record("1.0.0"),
        release_record("1.10.0", yanked=True),
        release_record("1.9.0"),
        release_record("2.0.0-beta.1", "beta"),
    ]
    found = latest(releases, "stable")
    assert found is not None
    assert found.version == "1.9.0"
    assert latest([], "stable") is None


def test_latest_stays_within_the_entitled_major_versions() -> None:
    releases = [release_record("1.4.0"), release_record("2.0.0"), release_record("2.1.0")]
    assert latest(releases, "stable").version == "2.1.0"  # type: ignore[union-attr]
    assert latest(releases, "stable", majors=(1,)).version == "1.4.0"  # type: ignore[union-attr]
    assert latest(releases, "stable", majors=(3,)) is None


def test_manifest_signature_verifies_with_the_public_key_alone_and_a_changed_byte_fails() -> None:
    signer = Signer(EnvSecrets(factories.TEST_SECRETS))
    file = ReleaseFile(
        name="genx-1.0.0-linux-x86_64.tar.gz",
        platform="linux-x86_64",
        size=3,
        sha256="a" * 64,
        object_name="releases/1.0.0/genx-1.0.0-linux-x86_64.tar.gz",
    )
    body = manifest_bytes(manifest_for("1.0.0", "stable", [file], DAY))
    signature = signer.sign(body)
    public_only = public_key_from_b64(signer.public_key_b64())  # what a plugin ships with

    assert verified_manifest(body, signature, public_only)["files"][0]["sha256"] == "a" * 64
    for index in (0, len(body) // 2, len(body) - 2):
        tampered = bytearray(body)
        tampered[index] ^= 0x01
        with pytest.raises(ManifestSignatureInvalid):
            verified_manifest(bytes(tampered), signature, public_only)
    other_key = Ed25519PrivateKey.generate().public_key()
    with pytest.raises(ManifestSignatureInvalid):
        verified_manifest(body, signature, other_key)


# -- publishing against the emulators -------------------------------------------------------------


def test_publish_uploads_files_manifest_and_signature_next_to_each_other(
    container: Container, release: Release
) -> None:
    names = {
        blob.name for blob in container.artifacts.client.list_blobs(container.artifacts.bucket)
    }
    assert names == {f.object_name for f in release.files} | {
        "releases/1.0.0/manifest.json",
        "releases/1.0.0/manifest.json.sig",
    }
    body, signature = container.publisher.fetch_manifest("1.0.0")
    manifest = verified_manifest(body, signature, container.signer.public_key)
    assert manifest["version"] == "1.0.0"
    assert manifest["channel"] == "stable"
    assert {f["name"]: f["sha256"] for f in manifest["files"]} == {
        f.name: f.sha256 for f in release.files
    }
    assert container.releases.get("1.0.0") == release


def test_an_existing_version_cannot_be_published_again(
    container: Container, release: Release, tmp_path: Path
) -> None:
    with pytest.raises(ReleaseExists) as caught:
        container.publisher.publish(artifact_files(tmp_path / "again"), SAMPLE_VERSION)
    assert caught.value.status == 409


def test_files_named_for_another_version_are_refused_before_any_upload(
    container: Container, tmp_path: Path
) -> None:
    with pytest.raises(InvalidRelease):
        container.publisher.publish(artifact_files(tmp_path / "x", "1.0.1"), "1.0.2")
    assert list(container.artifacts.client.list_blobs(container.artifacts.bucket)) == []


def test_verify_accepts_the_published_file_and_rejects_a_changed_one(
    container: Container, release: Release, tmp_path: Path
) -> None:
    (original,) = [p for p in artifact_files(tmp_path / "check") if "linux" in p.name]
    assert container.publisher.verify_file(original)[0] is True

    original.write_bytes(original.read_bytes()[:-1] + b"X")
    ok, reason = container.publisher.verify_file(original)
    assert ok is False
    assert "SHA-256" in reason


# -- the CLI ---------------------------------------------------------------------------------------


@pytest.fixture
def cli(container: Container) -> Iterator[CliRunner]:
    use_container(container)
    yield CliRunner()
    use_container(None)


def test_cli_publishes_lists_yanks_and_verifies(
    cli: CliRunner, container: Container, tmp_path: Path
) -> None:
    files = [str(p) for p in artifact_files(tmp_path / "dist", "1.2.0")]
    notes = tmp_path / "NOTES.txt"
    notes.write_text("Fixes the crash on start.\n", encoding="utf-8")

    published = cli.invoke(
        app, ["release", "publish", *files, "--version", "1.2.0", "--notes-file", str(notes)]
    )
    assert published.exit_code == 0, published.output
    assert "published 1.2.0" in published.output
    stored = container.publisher.releases.get("1.2.0")
    assert stored is not None
    assert stored.notes == "Fixes the crash on start."

    again = cli.invoke(app, ["release", "publish", *files, "--version", "1.2.0"])
    assert again.exit_code == 1
    assert "release_exists" in again.output

    public_key = container.signer.public_key_b64()
    verified = cli.invoke(app, ["release", "verify", files[0], "--public-key", public_key])
    assert verified.exit_code == 0, verified.output
    assert "OK" in verified.output

    assert cli.invoke(app, ["release", "yank", "1.2.0"]).exit_code == 0
    listing = cli.invoke(app, ["release", "list"])
    assert "1.2.0" in listing.output
    assert "YANKED" in listing.output


def test_cli_lists_failed_emails(cli: CliRunner, container: Container) -> None:
    assert "no failed e-mails" in cli.invoke(app, ["emails", "failed"]).output
