"""The one port through which secrets arrive.

Locally and in tests secrets are environment variables; in Google Cloud they are read
from Secret Manager (`projects/P/secrets/<kebab-name>/versions/latest`). A missing
secret raises `SecretUnavailable`: the feature that needs it is disabled (fail closed),
it never runs without the check the secret protects.
"""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Mapping
from enum import StrEnum
from typing import Protocol

from commerce.errors import SecretUnavailable


class SecretName(StrEnum):
    STRIPE_SECRET_KEY = "STRIPE_SECRET_KEY"  # noqa: S105 - a name, not a value
    STRIPE_WEBHOOK_SECRET = "STRIPE_WEBHOOK_SECRET"  # noqa: S105 - a name, not a value
    LICENSE_KEY_PEPPER = "LICENSE_KEY_PEPPER"
    KEY_DERIVATION_SECRET = "KEY_DERIVATION_SECRET"  # noqa: S105
    # Previous derivation secrets, comma separated, kept to re-send keys issued before a
    # rotation (see docs/security.md).
    KEY_DERIVATION_SECRETS_PREVIOUS = "KEY_DERIVATION_SECRETS_PREVIOUS"
    SIGNING_PRIVATE_KEY = "SIGNING_PRIVATE_KEY"
    SENDGRID_API_KEY = "SENDGRID_API_KEY"
    # Keys the hashes of client networks in audits and of rate-limit buckets
    # (commerce.pseudonyms).
    PSEUDONYM_KEY = "PSEUDONYM_KEY"

    @property
    def secret_manager_id(self) -> str:
        return self.value.lower().replace("_", "-")


def decode_secret(value: str, name: str) -> bytes:
    """Secrets are base64url text (padding optional); anything shorter than 16 bytes is refused."""
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (ValueError, TypeError):
        raise SecretUnavailable(f"secret {name} is not valid base64url") from None
    if len(raw) < 16:
        raise SecretUnavailable(f"secret {name} is too short (need at least 16 bytes)")
    return raw


class SecretSource(Protocol):
    def get(self, name: SecretName) -> str:
        """The secret's value; raises SecretUnavailable when absent or empty."""
        ...

    def get_optional(self, name: SecretName) -> str | None: ...


class EnvSecrets:
    """Secrets from a mapping (the process environment by default)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ if environ is not None else os.environ

    def get_optional(self, name: SecretName) -> str | None:
        value = self._environ.get(name.value, "").strip()
        return value or None

    def get(self, name: SecretName) -> str:
        value = self.get_optional(name)
        if value is None:
            raise SecretUnavailable(f"secret {name.value} is not set; the feature is disabled")
        return value


class SecretManagerSecrets:
    """Secrets from Google Secret Manager, fetched lazily and cached per process."""

    def __init__(self, project: str) -> None:
        self._project = project
        self._cache: dict[SecretName, str | None] = {}
        self._lock = threading.Lock()
        self._client: object | None = None

    def _fetch(self, name: SecretName) -> str | None:
        from google.api_core import exceptions as gexc
        from google.cloud import secretmanager

        with self._lock:
            if self._client is None:
                self._client = secretmanager.SecretManagerServiceClient()
            client = self._client
        assert isinstance(client, secretmanager.SecretManagerServiceClient)
        path = f"projects/{self._project}/secrets/{name.secret_manager_id}/versions/latest"
        try:
            response = client.access_secret_version(request={"name": path})
        except (gexc.NotFound, gexc.PermissionDenied, gexc.FailedPrecondition):
            return None
        value: str = response.payload.data.decode("utf-8").strip()
        return value or None

    def get_optional(self, name: SecretName) -> str | None:
        if name not in self._cache:
            self._cache[name] = self._fetch(name)
        return self._cache[name]

    def get(self, name: SecretName) -> str:
        value = self.get_optional(name)
        if value is None:
            raise SecretUnavailable(
                f"secret {name.secret_manager_id} is missing in Secret Manager; "
                "the feature is disabled"
            )
        return value
