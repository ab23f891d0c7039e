"""Releases: naming rules, semantic versions and the signed manifest (pure code).

A release is a semantic version published to a channel (`stable` or `beta`) with one
file per platform, named `genx-<semver>-<platform>.<ext>`. Its manifest lists every
file with size and SHA-256; the shop signs the manifest's exact bytes with Ed25519
so anyone holding the public key can check a download offline. Versions are
immutable: a version is published once and can only be yanked afterwards.
See docs/releases.md.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from commerce.errors import InvalidRequest

CHANNELS = ("stable", "beta")
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.json.sig"
MANIFEST_SCHEMA = "genx-release-manifest/v1"

_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)
_EXTENSIONS = ("tar.gz", "zip", "dmg", "pkg", "msi", "exe", "tar.xz")
_PLATFORM = r"[a-z0-9]+(?:[-_][a-z0-9]+)*"


class InvalidRelease(InvalidRequest):
    code = "invalid_release"
    default_detail = "The release does not follow the naming and versioning rules."


@dataclass(frozen=True, order=False)
class SemVer:
    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    text: str = ""

    @classmethod
    def parse(cls, text: str) -> SemVer:
        match = _SEMVER.match(text)
        if not match:
            raise InvalidRelease(f"{text!r} is not a semantic version (MAJOR.MINOR.PATCH)")
        pre = tuple(match.group(4).split(".")) if match.group(4) else ()
        return cls(int(match.group(1)), int(match.group(2)), int(match.group(3)), pre, text)

    def sort_key(self) -> tuple[Any, ...]:
        # A pre-release sorts before its release; numeric identifiers before alphanumeric.
        pre: tuple[Any, ...] = tuple(
            (0, int(part), "") if part.isdigit() else (1, 0, part) for part in self.prerelease
        )
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, pre)


def is_valid_version(text: str) -> bool:
    return bool(_SEMVER.match(text))


def parse_file_name(name: str, product: str = "genx") -> tuple[str, str]:
    """`genx-1.2.0-linux-x86_64.tar.gz` -> ("1.2.0", "linux-x86_64")."""
    for ext in _EXTENSIONS:
        suffix = "." + ext
        if not name.endswith(suffix):
            continue
        stem = name[: -len(suffix)]
        prefix = product + "-"
        if not stem.startswith(prefix):
            break
        rest = stem[len(prefix) :]
        # The version ends at the first '-' followed by a platform that is not a pre-release.
        for match in re.finditer("-", rest):
            version, platform = rest[: match.start()], rest[match.end() :]
            if is_valid_version(version) and re.fullmatch(_PLATFORM, platform):
                return version, platform
        break
    raise InvalidRelease(
        f"{name!r} does not follow {product}-<semver>-<platform>.<ext> "
        f"(ext one of {', '.join(_EXTENSIONS)})"
    )


class ReleaseFile(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    platform: str
    size: int
    sha256: str
    object_name: str


MAX_NOTES_CHARS = 10_000


class Release(BaseModel):
    """Stored in `releases/{version}`."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str  # the version
    version: str
    channel: str
    files: tuple[ReleaseFile, ...]
    published_at: datetime
    yanked: bool = False
    yanked_at: datetime | None = None
    manifest_sha256: str = ""
    signature: str = ""  # base64url Ed25519 over the manifest bytes
    # What changed, as the seller wrote it (plain text; shown by the plugin's update
    # check). Not part of the signed manifest; the license API's answers that carry it
    # are signed as a whole.
    notes: str | None = Field(default=None, max_length=MAX_NOTES_CHARS)

    def file_for(self, platform: str) -> ReleaseFile | None:
        return next((f for f in self.files if f.platform == platform), None)

    @property
    def semver(self) -> SemVer:
        return SemVer.parse(self.version)


def object_name(version: str, file_name: str) -> str:
    return f"releases/{version}/{file_name}"


def manifest_object_name(version: str) -> str:
    return object_name(version, MANIFEST_NAME)


def signature_object_name(version: str) -> str:
    return object_name(version, SIGNATURE_NAME)


def latest(
    releases: Iterable[Release], channel: str, majors: Iterable[int] | None = None
) -> Release | None:
    """The newest non-yanked release of a channel (by semantic version), limited to the
    major versions a license is entitled to when `majors` is given."""
    allowed = None if majors is None else set(majors)
    candidates = [
        r
        for r in releases
        if r.channel == channel and not r.yanked and (allowed is None or r.semver.major in allowed)
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda r: r.semver.sort_key())


def manifest_for(
    version: str, channel: str, files: Iterable[ReleaseFile], published_at: datetime
) -> dict[str, Any]:
    return {
        "schema": MANIFEST_SCHEMA,
        "product": "genx",
        "version": version,
        "channel": channel,
        "date": published_at.isoformat(),
        "files": [
            {"name": f.name, "platform": f.platform, "size": f.size, "sha256": f.sha256}
            for f in sorted(files, key=lambda f: f.name)
        ],
    }


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    """Canonical bytes (sorted keys, no spaces, trailing newline): what gets signed."""
    return json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode() + b"\n"


def sha256_file(path: Path, chunk_size: int = 1024 * 1024) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def check_file_against_manifest(path: Path, manifest: dict[str, Any]) -> tuple[bool, str]:
    """(ok, reason) for a local file against an already signature-checked manifest."""
    entry = next((f for f in manifest.get("files", []) if f.get("name") == path.name), None)
    if entry is None:
        return False, f"{path.name} is not part of release {manifest.get('version')}"
    sha256, size = sha256_file(path)
    if size != entry["size"]:
        return False, f"size {size} differs from the manifest's {entry['size']}"
    if sha256 != entry["sha256"]:
        return False, "SHA-256 differs from the manifest"
    return True, f"{path.name} matches release {manifest['version']} ({entry['sha256']})"
