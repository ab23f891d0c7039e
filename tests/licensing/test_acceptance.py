"""Acceptance: a script acting as the plugin, over HTTP (functions-framework in-process)
on the Firestore and storage emulators, trusting nothing but the shop's public key."""

from __future__ import annotations

import hashlib
import json
import secrets
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from functions_framework import create_app

from commerce.adapters.artifacts import ArtifactStore
from commerce.bootstrap import Container, use_container
from commerce.clock import FixedClock
from commerce.licensing.verifier import (
    KEY_ID_HEADER,
    SIGNATURE_HEADER,
    CertificateState,
    LicenseCall,
    ResponseCheck,
    check_response,
    trusted_keys,
    verify_certificate,
)
from commerce.signing import public_key_from_b64, verify
from emulators.local_secrets import new_service_account_key
from tests.licensing.conftest import (
    MAIN,
    PUBLIC_BASE,
    build_container,
    buy,
    make_settings,
    refund,
)

pytestmark = pytest.mark.emulators
PLATFORM = "linux-x86_64"


def artifacts(directory: Path, version: str) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for suffix in ("linux-x86_64.tar.gz", "windows-x86_64.zip"):
        path = directory / f"genx-{version}-{suffix}"
        path.write_bytes(f"GENX {version} {suffix}\n".encode() * 300 + bytes(range(256)))
        paths.append(path)
    return paths


@pytest.fixture
def shop(
    firestore_db: Any, storage_client: Any, tmp_path: Path, clock: FixedClock
) -> Iterator[Container]:
    signer_file = tmp_path / "url-signer.json"
    signer_file.write_text(json.dumps(new_service_account_key("demo-genx-test")))
    settings = make_settings(url_signing_key_file=str(signer_file))
    container = build_container(settings, clock, firestore_db)
    container.__dict__["artifacts"] = ArtifactStore(settings, storage_client)
    container.download_service.release_cache_seconds = 0
    container.publisher.publish(artifacts(tmp_path / "1.0.0", "1.0.0"), "1.0.0")
    clock.advance(days=30)
    container.publisher.publish(
        artifacts(tmp_path / "1.1.0", "1.1.0"), "1.1.0", notes="Faster rendering.\n"
    )
    use_container(container)
    yield container
    use_container(None)
    container.license_service.close()


class PluginScript:
    """What the plugin does: sign nothing, trust only the embedded public key."""

    def __init__(self, public_key_b64: str, key: str) -> None:
        self.keys = trusted_keys(public_key_b64)
        self.public_key_b64 = public_key_b64
        self.key = key
        self.api = create_app("license_api", MAIN).test_client()
        self.downloads = create_app("download", MAIN).test_client()

    def call(self, path: str, **fields: Any) -> dict[str, Any]:
        sent = LicenseCall(
            path.strip("/"),
            secrets.token_urlsafe(16),
            key=self.key,
            fingerprint=fields.get("fingerprint"),
            certificate=fields.get("certificate"),
        )
        response = self.api.post(
            path,
            data=json.dumps({"key": self.key, "nonce": sent.nonce, **fields}),
            headers={"Content-Type": "application/json", "X-Forwarded-For": "192.0.2.10"},
        )
        outcome = check_response(
            response.get_data(),
            response.headers.get(SIGNATURE_HEADER),
            response.headers.get(KEY_ID_HEADER),
            self.keys,
            request=sent,
        )
        assert outcome is ResponseCheck.OK, (path, outcome)
        body: dict[str, Any] = json.loads(response.get_data())
        return body

    def download(self, url: str) -> bytes:
        parts = urlsplit(url)
        assert f"{parts.scheme}://{parts.netloc}" == PUBLIC_BASE
        redirect = self.downloads.get(f"{parts.path}?{parts.query}")
        assert redirect.status_code == 302, redirect.get_data()
        with urllib.request.urlopen(redirect.headers["Location"], timeout=10) as response:
            data: bytes = response.read()
        return data


def test_the_plugin_activates_verifies_offline_updates_and_sees_a_refund(
    shop: Container, clock: FixedClock
) -> None:
    bought = buy(shop)
    plugin = PluginScript(shop.signer.public_key_b64(), bought.key)

    # Machines 1-3 activate; the fourth hits the limit of three.
    for n in (1, 2, 3):
        assert plugin.call("/activate", fingerprint=f"machine-{n}-fingerprint")["status"] == "VALID"
    refused = plugin.call("/activate", fingerprint="machine-4-fingerprint")
    assert refused["status"] == "TOO_MANY_ACTIVATIONS"
    assert len(refused["activations"]) == 3

    # Deactivate one, activate the new machine instead.
    second = plugin.call("/validate", fingerprint="machine-2-fingerprint")["activation"]["id"]
    assert plugin.call("/deactivate", activation_id=second)["status"] == "VALID"
    activated = plugin.call("/activate", fingerprint="machine-4-fingerprint", label="New PC")
    assert activated["status"] == "VALID"

    # Its certificate verifies offline with the public key alone.
    offline = verify_certificate(
        activated["certificate"],
        trusted_keys(plugin.public_key_b64),
        now=int(clock.now().timestamp()),
        fingerprint="machine-4-fingerprint",
        product="genx",
    )
    assert offline.state is CertificateState.VALID
    assert offline.payload is not None
    assert offline.payload["entitled_major_versions"] == [1]

    # An update offer whose link's bytes match the signed manifest.
    offer = plugin.call(
        "/updates",
        fingerprint="machine-4-fingerprint",
        current_version="1.0.0",
        platform=PLATFORM,
    )
    assert offer["status"] == "VALID"
    assert offer["update_available"] is True
    update = offer["update"]
    assert update["version"] == "1.1.0"
    assert update["notes"] == "Faster rendering."  # as published, in the signed answer
    manifest_bytes = update["manifest"].encode()
    assert verify(
        public_key_from_b64(plugin.public_key_b64), manifest_bytes, update["manifest_signature"]
    )
    manifest = json.loads(manifest_bytes)
    entry = next(f for f in manifest["files"] if f["platform"] == PLATFORM)
    data = plugin.download(update["download"]["url"])
    assert hashlib.sha256(data).hexdigest() == entry["sha256"] == update["file"]["sha256"]
    assert len(data) == entry["size"] == update["file"]["size"]

    # After a refund: REFUNDED on the next validate, and no more update links.
    refund(shop, bought)  # applied by fulfillment, as the Stripe webhook applies it
    assert plugin.call("/validate", fingerprint="machine-4-fingerprint")["status"] == "REFUNDED"
    after = plugin.call(
        "/updates", fingerprint="machine-4-fingerprint", current_version="1.0.0", platform=PLATFORM
    )
    assert after["status"] == "REFUNDED"
    assert "update" not in after
    assert "download" not in json.dumps(after)
    # The link handed out before the refund stops working too (download function).
    parts = urlsplit(update["download"]["url"])
    assert plugin.downloads.get(f"{parts.path}?{parts.query}").status_code == 410
