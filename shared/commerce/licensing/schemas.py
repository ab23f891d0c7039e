"""Values of the license API: status codes, activations, requests and results."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from commerce.domain.ids import activation_id as activation_id  # re-exported
from commerce.domain.models import Activation as Activation  # re-exported
from commerce.domain.releases import is_valid_version
from commerce.licensing.verifier import NONCE_PATTERN, fingerprint_sha256


class StatusCode(StrEnum):
    """The stable answer of every license-API call (part of the API: never rename)."""

    VALID = "VALID"
    NOT_FOUND = "NOT_FOUND"  # no such key (all a wrong key ever learns)
    REVOKED = "REVOKED"  # revoked by support or a lost dispute
    REFUNDED = "REFUNDED"
    DISPUTED = "DISPUTED"  # chargeback open: suspended until decided
    NO_ACTIVATION = "NO_ACTIVATION"  # this machine is not activated
    TOO_MANY_ACTIVATIONS = "TOO_MANY_ACTIVATIONS"
    FINGERPRINT_MISMATCH = "FINGERPRINT_MISMATCH"  # certificate/activation is another machine's
    INVALID_KEY = "INVALID_KEY"  # typo caught by the check character, before any lookup
    RATE_LIMITED = "RATE_LIMITED"
    INVALID_REQUEST = "INVALID_REQUEST"  # malformed body (HTTP 4xx)
    UNAVAILABLE = "UNAVAILABLE"  # not configured or storage busy (HTTP 503)
    CHANNEL_NOT_ALLOWED = "CHANNEL_NOT_ALLOWED"  # updates: not a channel of the license


# --- stored documents ---------------------------------------------------------------


# --- requests ---------------------------------------------------------------------------

_PRINTABLE = r"^[\x21-\x7e]+$"
_LABEL = r"^[^\x00-\x1f\x7f]*$"


class LicenseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)

    # Required: the signed answer echoes it and is bound to it (docs/license-format.md).
    nonce: str = Field(min_length=16, max_length=128, pattern=NONCE_PATTERN.pattern)


class KeyRequest(LicenseRequest):
    key: str = Field(min_length=1, max_length=100)


class ValidateRequest(KeyRequest):
    fingerprint: str | None = Field(default=None, min_length=8, max_length=256, pattern=_PRINTABLE)


class ActivateRequest(KeyRequest):
    fingerprint: str = Field(min_length=8, max_length=256, pattern=_PRINTABLE)
    label: str | None = Field(default=None, max_length=64, pattern=_LABEL)


class DeactivateRequest(KeyRequest):
    activation_id: str | None = Field(default=None, pattern=r"^act_[0-9a-f]{24}$")
    fingerprint: str | None = Field(default=None, min_length=8, max_length=256, pattern=_PRINTABLE)

    @model_validator(mode="after")
    def _one_machine(self) -> DeactivateRequest:
        if self.activation_id is None and self.fingerprint is None:
            raise ValueError("give activation_id or fingerprint")
        return self


class CertificateRequest(KeyRequest):
    fingerprint: str = Field(min_length=8, max_length=256, pattern=_PRINTABLE)


class UpdatesRequest(LicenseRequest):
    key: str | None = Field(default=None, min_length=1, max_length=100)
    certificate: str | None = Field(default=None, min_length=1, max_length=4096)
    fingerprint: str | None = Field(default=None, min_length=8, max_length=256, pattern=_PRINTABLE)
    current_version: str = Field(
        min_length=5, max_length=64, pattern=r"^\d+\.\d+\.\d+[0-9A-Za-z.+-]*$"
    )
    platform: str = Field(min_length=1, max_length=40, pattern=r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$")
    channel: str = Field(default="stable", min_length=1, max_length=20, pattern=r"^[a-z]+$")

    @field_validator("current_version")
    @classmethod
    def _semantic_version(cls, value: str) -> str:
        if not is_valid_version(value):
            raise ValueError("must be a semantic version (MAJOR.MINOR.PATCH)")
        return value

    @model_validator(mode="after")
    def _one_credential(self) -> UpdatesRequest:
        if (self.key is None) == (self.certificate is None):
            raise ValueError("give exactly one of key or certificate")
        return self


def fingerprint_hash(fingerprint: str) -> str:
    return fingerprint_sha256(fingerprint)


# --- results ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """A service result: the status and the fields that go with it (JSON-ready values)."""

    status: StatusCode
    fields: dict[str, Any] = field(default_factory=dict)
    http_status: int = 200
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return self.status is StatusCode.VALID
