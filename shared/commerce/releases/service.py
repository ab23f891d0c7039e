"""Publishing, yanking and verifying releases (used by the CLI and the dev seed).

Publishing order matters: files first (each verified against the stored CRC32C),
then the signed manifest next to them, then the Firestore record last, so a
release becomes visible to downloads only once everything it names is in place.
Versions are immutable: an existing record or object refuses the publish.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from commerce.domain.releases import (
    CHANNELS,
    MAX_NOTES_CHARS,
    InvalidRelease,
    Release,
    ReleaseFile,
    SemVer,
    check_file_against_manifest,
    manifest_bytes,
    manifest_for,
    manifest_object_name,
    object_name,
    parse_file_name,
    sha256_file,
    signature_object_name,
)
from commerce.errors import AlreadyExists, CommerceError, NotFound
from commerce.signing import verify

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from commerce.adapters.artifacts import ArtifactStore, Progress
    from commerce.clock import Clock
    from commerce.releases.repository import ReleaseStore
    from commerce.signing import Signer


class ReleaseExists(AlreadyExists):
    code = "release_exists"
    default_detail = "This version was published already; versions are immutable."


class ReleaseNotFound(NotFound):
    code = "release_not_found"
    default_detail = "There is no release with this version."


class ManifestSignatureInvalid(CommerceError):
    status = 400
    code = "manifest_signature_invalid"
    default_detail = "The release manifest's signature does not verify."


@dataclass(frozen=True)
class LocalFile:
    path: Path
    platform: str
    sha256: str
    size: int


def inspect_files(paths: Sequence[Path], version: str) -> list[LocalFile]:
    """Check names, versions and platforms before anything is uploaded."""
    if not paths:
        raise InvalidRelease("name at least one file")
    found: list[LocalFile] = []
    for path in paths:
        if not path.is_file():
            raise InvalidRelease(f"{path} is not a file")
        file_version, platform = parse_file_name(path.name)
        if file_version != version:
            raise InvalidRelease(f"{path.name} is named for {file_version}, not {version}")
        if any(f.platform == platform for f in found):
            raise InvalidRelease(f"two files for platform {platform}")
        sha256, size = sha256_file(path)
        found.append(LocalFile(path, platform, sha256, size))
    return found


class Publisher:
    def __init__(
        self,
        *,
        store: ArtifactStore,
        releases: ReleaseStore,
        signer: Signer,
        clock: Clock,
    ) -> None:
        self.store = store
        self.releases = releases
        self.signer = signer
        self.clock = clock

    def publish(
        self,
        paths: Sequence[Path],
        version: str,
        channel: str = "stable",
        *,
        notes: str | None = None,
        progress: Callable[[LocalFile], Progress] | None = None,
    ) -> Release:
        SemVer.parse(version)
        if channel not in CHANNELS:
            raise InvalidRelease(f"channel must be one of {', '.join(CHANNELS)}")
        notes = notes.strip() if notes else None
        if notes is not None and len(notes) > MAX_NOTES_CHARS:
            raise InvalidRelease(f"release notes are limited to {MAX_NOTES_CHARS} characters")
        files = inspect_files(paths, version)
        if self.releases.get(version) is not None or self.store.exists(
            manifest_object_name(version)
        ):
            raise ReleaseExists(f"version {version} exists; publish a new version instead")
        self.signer.private_key  # fail closed before uploading anything  # noqa: B018
        stored: list[ReleaseFile] = []
        for local in files:
            name = object_name(version, local.path.name)
            self.store.upload_file(
                local.path,
                name,
                sha256=local.sha256,
                progress=progress(local) if progress else None,
            )
            stored.append(
                ReleaseFile(
                    name=local.path.name,
                    platform=local.platform,
                    size=local.size,
                    sha256=local.sha256,
                    object_name=name,
                )
            )
        published_at = self.clock.now()
        manifest = manifest_for(version, channel, stored, published_at)
        body = manifest_bytes(manifest)
        signature = self.signer.sign(body)
        self.store.upload_bytes(manifest_object_name(version), body, "application/json")
        self.store.upload_bytes(
            signature_object_name(version), signature.encode() + b"\n", "text/plain"
        )

        release = Release(
            id=version,
            version=version,
            channel=channel,
            files=tuple(sorted(stored, key=lambda f: f.name)),
            published_at=published_at,
            manifest_sha256=hashlib.sha256(body).hexdigest(),
            signature=signature,
            notes=notes or None,
        )
        try:
            self.releases.create(release)
        except AlreadyExists:
            raise ReleaseExists(f"version {version} exists") from None
        return release

    def yank(self, version: str) -> Release:
        release = self.releases.get(version)
        if release is None:
            raise ReleaseNotFound(f"no release {version}")
        if not release.yanked:
            self.releases.update(version, {"yanked": True, "yanked_at": self.clock.now()})
        found = self.releases.get(version)
        assert found is not None
        return found

    def fetch_manifest(self, version: str) -> tuple[bytes, str]:
        body = self.store.download_bytes(manifest_object_name(version))
        signature = self.store.download_bytes(signature_object_name(version)).decode().strip()
        return body, signature

    def verify_file(
        self, path: Path, public_key: Ed25519PublicKey | None = None
    ) -> tuple[bool, str]:
        """Check a local file against its version's signed manifest (public key only)."""
        version, _ = parse_file_name(path.name)
        body, signature = self.fetch_manifest(version)
        key = public_key or self.signer.public_key
        manifest = verified_manifest(body, signature, key)
        return check_file_against_manifest(path, manifest)


def verified_manifest(body: bytes, signature: str, public_key: Ed25519PublicKey) -> dict[str, Any]:
    """The manifest, once its detached signature verifies; raises otherwise."""
    if not verify(public_key, body, signature):
        raise ManifestSignatureInvalid()
    manifest: dict[str, Any] = json.loads(body)
    return manifest
