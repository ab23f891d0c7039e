"""Update links end to end: `license_api` makes them from random tokens without any
key-derivation secret, and the `download` function (which holds no secret but the
key of its rate-limit ids and network hashes) redeems them like every other link."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from functions_framework import create_app

from commerce.bootstrap import Container, use_container
from commerce.domain.releases import Release
from commerce.domain.tokens import derive_token, hash_token
from commerce.errors import SecretUnavailable
from commerce.keys import decode_secret
from commerce.secrets import EnvSecrets, SecretName
from commerce.update_links import RANDOM_TOKEN
from tests.delivery.conftest import PUBLIC_BASE, Bought
from tests.support import factories

MAIN = str(Path(__file__).resolve().parents[2] / "functions" / "main.py")
PLATFORM = "linux-x86_64"

# What license_api is given in the cloud: the pepper (to look keys up) and the signing
# key. No derivation secret, current or previous.
LICENSE_API_SECRETS = {
    name: factories.TEST_SECRETS[name]
    for name in ("LICENSE_KEY_PEPPER", "SIGNING_PRIVATE_KEY", "PSEUDONYM_KEY")
}
# download holds one low-value secret: the key of rate-limit ids and network hashes.
DOWNLOAD_SECRETS = {"PSEUDONYM_KEY": factories.TEST_SECRETS["PSEUDONYM_KEY"]}


class AskedSecrets(EnvSecrets):
    """The environment port, remembering every secret name asked for."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.asked: set[str] = set()

    def get_optional(self, name: SecretName) -> str | None:
        self.asked.add(name.value)
        return super().get_optional(name)


@pytest.fixture
def license_instance(container: Container) -> Iterator[Container]:
    """A license_api instance on the same database, with only its cloud secrets."""
    built = Container(
        container.settings, clock=container.clock, secrets=AskedSecrets(LICENSE_API_SECRETS)
    )
    built.__dict__["db"] = container.db
    yield built
    if "license_service" in built.__dict__:
        built.license_service.close()


@pytest.fixture
def download_instance(container: Container) -> Container:
    """A download instance with only its pseudonym key (as Terraform deploys it)."""
    built = Container(
        container.settings, clock=container.clock, secrets=AskedSecrets(DOWNLOAD_SECRETS)
    )
    built.__dict__["db"] = container.db
    built.__dict__["artifacts"] = container.artifacts
    built.download_service.release_cache_seconds = 0
    return built


def call(instance: Container, target: str, method: str, path: str, **kwargs: Any) -> Any:
    use_container(instance)
    try:
        client = create_app(target, MAIN).test_client()
        return client.open(path, method=method, **kwargs)
    finally:
        use_container(None)


FINGERPRINT = "machine-01-" + "ab" * 16


def activate(instance: Container, key: str) -> None:
    """Update links are only for activated machines."""
    answer = call(
        instance,
        "license_api",
        "POST",
        "/activate",
        json={"key": key, "fingerprint": FINGERPRINT, "nonce": "update-links-activate-01"},
    )
    assert answer.get_json()["status"] == "VALID", answer.get_data(as_text=True)


def test_an_update_link_made_without_derivation_secrets_is_redeemed_by_download(
    license_instance: Container, download_instance: Container, release: Release, bought: Bought
) -> None:
    key = bought.purchase.key
    activate(license_instance, key)
    answer = call(
        license_instance,
        "license_api",
        "POST",
        "/updates",
        json={
            "key": key,
            "fingerprint": FINGERPRINT,
            "current_version": "0.9.0",
            "platform": PLATFORM,
            "nonce": "update-links-nonce-0001",
        },
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = answer.get_json()
    assert body["status"] == "VALID"
    link = body["update"]["download"]["url"]
    assert link.startswith(f"{PUBLIC_BASE}/d/")
    assert license_instance.secrets.asked <= set(LICENSE_API_SECRETS)  # type: ignore[attr-defined]

    token = link.split("/d/", 1)[1].split("?", 1)[0]
    grant = download_instance.download_tokens.get(hash_token(token))
    assert grant is not None
    assert grant.secret_id == RANDOM_TOKEN
    assert token not in str(grant)  # only its hash is stored

    redirect = call(download_instance, "download", "GET", link.removeprefix(PUBLIC_BASE))
    assert redirect.status_code == 302, redirect.get_data(as_text=True)
    assert "X-Goog-Signature=" in redirect.headers["Location"]
    assert f"genx-{release.version}-{PLATFORM}" in redirect.headers["Location"]
    assert download_instance.secrets.asked <= set(DOWNLOAD_SECRETS)  # type: ignore[attr-defined]
    redeemed = download_instance.download_tokens.get(hash_token(token))
    assert redeemed is not None
    assert redeemed.redemptions == 1


def test_the_token_is_random_not_derived_and_cannot_be_re_derived(
    container: Container, license_instance: Container, release: Release, bought: Bought
) -> None:
    activate(license_instance, bought.purchase.key)
    urls = [
        call(
            license_instance,
            "license_api",
            "POST",
            "/updates",
            json={
                "key": bought.purchase.key,
                "fingerprint": FINGERPRINT,
                "current_version": "0.9.0",
                "platform": PLATFORM,
                "nonce": "update-links-nonce-0002",
            },
        ).get_json()["update"]["download"]["url"]
        for _ in range(2)
    ]
    tokens = [url.split("/d/", 1)[1].split("?", 1)[0] for url in urls]
    assert tokens[0] != tokens[1]
    secret = decode_secret(factories.TEST_SECRETS["KEY_DERIVATION_SECRET"], "test")
    for token in tokens:
        grant = container.download_tokens.get(hash_token(token))
        assert grant is not None
        assert derive_token(secret, grant.token_id) != token
        # The full key material (e-mail worker) refuses to rebuild a link for it.
        with pytest.raises(LookupError):
            container.keys.token_for(grant.token_id, grant.secret_id)


def test_license_api_without_the_pepper_fails_closed(
    container: Container, release: Release, bought: Bought
) -> None:
    bare = Container(
        container.settings,
        clock=container.clock,
        secrets=EnvSecrets({"SIGNING_PRIVATE_KEY": factories.TEST_SECRETS["SIGNING_PRIVATE_KEY"]}),
    )
    bare.__dict__["db"] = container.db
    with pytest.raises(SecretUnavailable):
        bare.keys.hash_key(bought.purchase.key or "")
