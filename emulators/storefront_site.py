"""Build the storefront for the local stack (`make site`, and a `make dev` set-up step).

    python -m emulators.storefront_site [--out build/site] [--manifest FILE]

With `ENVIRONMENT` set in the environment (CI, a deploy to a bucket) the build uses
that environment exactly like the functions do. Otherwise it uses the local stack's
settings (ports from firebase.json / emulators/ports.json, the user's `.env`), so the
pages call the locally running functions.

The latest release's version and date come from the newest `releases/<v>/manifest.json`
in the artifacts bucket when the storage emulator is reachable and holds one (the
set-up step runs after the sample release is published); else from `--manifest`, else
from `site/release.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from commerce.settings import Settings
from commerce.storefront.build import (
    DEFAULT_OUT,
    ReleaseInfo,
    SiteBuildError,
    load_release,
    release_from_manifest,
    render_site,
)

if TYPE_CHECKING:
    from emulators.stack import StackInfo

REPO_ROOT = Path(__file__).resolve().parent.parent


def settings_from(env: Mapping[str, str]) -> Settings:
    """Settings from a mapping of environment variables (not the process environment)."""
    values: dict[str, Any] = {
        name: env[name.upper()] for name in Settings.model_fields if name.upper() in env
    }
    return Settings(**values)


def latest_manifest_in_bucket(env: Mapping[str, str]) -> dict[str, Any] | None:
    """The newest stable release manifest in the artifacts bucket, if any can be read."""
    host = env.get("STORAGE_EMULATOR_HOST")
    bucket_name = env.get("ARTIFACTS_BUCKET")
    if not host or not bucket_name:
        return None
    address = urlsplit(host if "://" in host else f"http://{host}")
    try:
        socket.create_connection((address.hostname or "", address.port or 80), timeout=1).close()
    except OSError:
        return None  # no storage emulator running (`make site` without `make dev`)
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = host
    try:
        from google.cloud import storage

        from commerce.domain.releases import MANIFEST_NAME, SemVer, is_valid_version

        client = storage.Client(project=env.get("GCP_PROJECT", "demo-genx"))
        found: list[tuple[tuple[Any, ...], str]] = []
        for blob in client.list_blobs(bucket_name, prefix="releases/", timeout=5, retry=None):
            parts = blob.name.split("/")
            if len(parts) == 3 and parts[2] == MANIFEST_NAME and is_valid_version(parts[1]):
                found.append((SemVer.parse(parts[1]).sort_key(), blob.name))
        for _, name in sorted(found, reverse=True):
            manifest = json.loads(client.bucket(bucket_name).blob(name).download_as_bytes())
            if isinstance(manifest, dict) and manifest.get("channel", "stable") == "stable":
                return manifest
        return None
    except Exception as exc:  # best effort: the fallback release file still builds a site
        print(f"storefront: no release manifest from the bucket ({exc})", file=sys.stderr)
        return None
    finally:
        if previous is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = previous


def build(
    env: Mapping[str, str],
    out: Path,
    *,
    manifest: Path | None = None,
    root: Path = REPO_ROOT,
) -> ReleaseInfo:
    source = root / "site"
    from_bucket = None if manifest is not None else latest_manifest_in_bucket(env)
    if from_bucket is not None:
        release = release_from_manifest(from_bucket)
    else:
        release = load_release(source, manifest)
    render_site(settings_from(env), source=source, out=out, release=release)
    return release


def build_site_step(info: StackInfo) -> Mapping[str, str]:
    """Set-up step of `make dev`: pages that call this stack's functions, in build/site.

    In "test" mode the end-to-end tests build their own copy (on their own ports)."""
    if info.mode == "dev":
        release = build(info.env, info.root / DEFAULT_OUT, root=info.root)
        print(f"storefront: built build/site ({release.version}, {release.date})")
    return {}


def local_environment(root: Path = REPO_ROOT) -> dict[str, str]:
    from emulators.local_secrets import read_env_file
    from emulators.stack import configured_ports, local_defaults

    env = local_defaults(configured_ports(root), root / ".local")
    dotenv = root / ".env"
    if dotenv.is_file():
        env.update(read_env_file(dotenv))
    return env


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / DEFAULT_OUT)
    parser.add_argument("--manifest", type=Path, help="a release manifest.json (optional)")
    args = parser.parse_args(argv)
    env = dict(os.environ) if os.environ.get("ENVIRONMENT") else local_environment()
    try:
        release = build(env, args.out, manifest=args.manifest)
    except (SiteBuildError, ValueError, OSError) as exc:
        print(f"site build failed: {exc}", file=sys.stderr)
        return 1
    print(f"built the storefront ({release.version}, {release.date}) into {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
