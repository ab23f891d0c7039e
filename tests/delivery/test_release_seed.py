"""The local stack's set-up step publishes a verifiable sample release."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from commerce.domain.releases import sha256_file
from commerce.releases.service import verified_manifest
from emulators.release_seed import make_sample_artifacts, seed_sample_release
from emulators.stack import StackInfo
from tests.delivery.conftest import PUBLIC_BASE
from tests.support import factories
from tests.support.emulators import TEST_BUCKET, TEST_PROJECT


def test_sample_artifacts_are_deterministic(tmp_path: Path) -> None:
    first = [sha256_file(p) for p in make_sample_artifacts(tmp_path / "a")]
    second = [sha256_file(p) for p in make_sample_artifacts(tmp_path / "b")]
    assert first == second
    assert len(first) == 3


def test_setup_step_publishes_a_signed_sample_release(
    container: Any, tmp_path: Path, url_signer_file: str
) -> None:
    env = {
        "ENVIRONMENT": "local",
        "GCP_PROJECT": TEST_PROJECT,
        "STOREFRONT_URL": "http://shop.test",
        "PUBLIC_BASE_URL": PUBLIC_BASE,
        "ARTIFACTS_BUCKET": TEST_BUCKET,
        "URL_SIGNING_KEY_FILE": url_signer_file,
        "FIRESTORE_EMULATOR_HOST": os.environ["FIRESTORE_EMULATOR_HOST"],
        "STORAGE_EMULATOR_HOST": os.environ["STORAGE_EMULATOR_HOST"],
        **factories.TEST_SECRETS,
    }
    info = StackInfo(root=tmp_path, project=TEST_PROJECT, urls={}, env=env, mode="test")

    assert seed_sample_release(info) == {}

    release = container.releases.get("1.0.0")
    assert release is not None
    assert {f.platform for f in release.files} == {
        "linux-x86_64",
        "windows-x86_64",
        "macos-universal",
    }
    body, signature = container.publisher.fetch_manifest("1.0.0")
    assert verified_manifest(body, signature, container.signer.public_key)["version"] == "1.0.0"
