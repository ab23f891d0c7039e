"""The local stack's URL-signing credentials (`commerce.adapters.artifacts`).

They are loaded without OpenSSL's RSA consistency check (a cold-start cost, see
docs/performance.md "Cold start"); everything else must be what google-auth's own
loader builds from the same key file: same account, same key id, same signatures.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.auth import crypt
from google.oauth2 import service_account

from commerce.adapters.artifacts import local_signing_credentials
from emulators.local_secrets import new_service_account_key


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("signer") / "url-signer.json"
    path.write_text(json.dumps(new_service_account_key("demo-genx-signing")))
    return path


def test_same_account_and_key_id_as_the_library_loader(key_file: Path) -> None:
    ours = local_signing_credentials(key_file)
    theirs = service_account.Credentials.from_service_account_file(str(key_file))
    info = json.loads(key_file.read_text())
    assert ours.service_account_email == theirs.service_account_email == info["client_email"]
    assert ours.signer_email == theirs.signer_email
    assert ours.signer.key_id == theirs.signer.key_id == info["private_key_id"]
    assert ours.project_id == theirs.project_id == "demo-genx-signing"


@pytest.mark.parametrize("message", [b"", b"GOOG4-RSA-SHA256\n20261201T000000Z\n", b"\xff" * 999])
def test_signs_exactly_as_the_library_loader(key_file: Path, message: bytes) -> None:
    ours = local_signing_credentials(key_file).sign_bytes(message)
    theirs = service_account.Credentials.from_service_account_file(str(key_file)).sign_bytes(
        message
    )
    assert ours == theirs  # RSA PKCS#1 v1.5 with SHA-256 is deterministic
    public = crypt.RSAVerifier.from_string(  # verified with the key's own public half
        _public_pem(key_file)
    )
    assert public.verify(message, ours)
    assert not public.verify(message + b"x", ours)


def _public_pem(key_file: Path) -> bytes:
    from cryptography.hazmat.primitives import serialization

    private = serialization.load_pem_private_key(
        json.loads(key_file.read_text())["private_key"].encode(), password=None
    )
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
