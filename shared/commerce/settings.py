"""Runtime configuration, read once from the environment by the composition root.

Every variable is documented in `.env.example`. Secrets are NOT settings: they come
through `commerce.secrets` (environment locally, Secret Manager in the cloud).

`Settings` is a plain frozen pydantic model; `load_settings` feeds it the environment
variables named like its fields (case-insensitive, `FOO_BAR` -> `foo_bar`). It used to
be a pydantic-settings `BaseSettings`, which did the same for these field types but
cost every function 36-53 ms of its cold start to import (docs/performance.md,
"Cold start"): nothing here needs its other sources (.env files, secrets directories,
JSON-decoded complex values).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from enum import StrEnum

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from commerce.errors import ConfigurationError


class Environment(StrEnum):
    LOCAL = "local"
    STAGING = "staging"
    PRODUCTION = "production"


class SecretsBackend(StrEnum):
    ENV = "env"
    SECRET_MANAGER = "secret-manager"  # noqa: S105 - a backend name


class MailBackend(StrEnum):
    SMTP = "smtp"
    SENDGRID = "sendgrid"


class Settings(BaseModel):
    """Frozen, validated configuration. Field `foo_bar` is read from `FOO_BAR`."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    environment: Environment
    gcp_project: str = Field(min_length=1)
    gcp_region: str = "europe-west1"

    # Product and storefront
    product_id: str = "genx"
    product_name: str = "GENX"
    license_key_prefix: str = Field(default="GENX", pattern=r"^[A-Z]{2,8}$")
    price_display: str = "€49"
    storefront_url: AnyHttpUrl
    storefront_origins: tuple[str, ...] = ()  # comma-separated in the environment
    public_base_url: AnyHttpUrl  # where the functions are reachable (download links)
    storefront_version: str = "1"
    # Function URLs the static storefront calls (baked into the pages by `make site`);
    # empty = `{PUBLIC_BASE_URL}/<function name>` (one host routing paths to functions).
    checkout_url: str = ""
    order_status_url: str = ""
    resend_url: str = ""

    # Stripe (the secret key is a secret, not a setting)
    stripe_price_id: str = ""
    stripe_api_base: str = ""  # empty = Stripe itself; set locally to the test double
    reconcile_lookback_days: int = Field(default=3, ge=1, le=30)  # Checkout Sessions kept 30 d
    # Currencies a paid session may be in (lower case, comma-separated); see
    # domain/payments.py. The configured price's currency must be one of them.
    payment_currencies: tuple[str, ...] = ("eur",)  # comma-separated in the environment
    # Fulfil sessions whose total is 0 (a 100 % promotion code)? Off: a free order is
    # rejected unless the shop decided to give licenses away (audited as a giveaway).
    allow_giveaways: bool = False

    # Storage
    artifacts_bucket: str = Field(min_length=3)
    url_signing_key_file: str = ""  # local only: throw-away service-account key
    signed_url_ttl_seconds: int = Field(default=300, ge=30, le=900)

    # Cloud Tasks / e-mail
    tasks_location: str = "europe-west1"
    tasks_queue: str = "email"
    tasks_emulator_host: str = ""  # local only, host:port of the tasks emulator
    email_worker_url: str = ""
    tasks_invoker_service_account: str = ""
    mail_backend: MailBackend = MailBackend.SMTP
    mail_from: str = "GENX Shop <shop@example.com>"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    sendgrid_api_host: str = ""  # empty = SendGrid itself; tests point it at a fake
    # About 2 h 10 min of retries on the schedule of commerce.domain.email_retry
    # (5, 10, 20, then every 40 s), after which the job is dead.
    email_max_attempts: int = Field(default=200, ge=1, le=1000)
    email_sweep_after_seconds: int = Field(default=300, ge=10)

    # Downloads and licensing
    download_token_ttl_hours: int = Field(default=72, ge=1, le=24 * 30)
    download_max_redemptions: int = Field(default=5, ge=1, le=100)
    license_activation_limit: int = Field(default=3, ge=1, le=100)
    activation_stale_days: int = Field(default=180, ge=1)
    # License API (docs/license-format.md): offline certificates and abuse guards
    license_certificate_refresh_days: int = Field(default=14, ge=1, le=365)
    license_certificate_grace_days: int = Field(default=14, ge=0, le=365)
    license_rate_limit_per_key: int = Field(default=30, ge=1)  # per rate-limit window
    license_rate_limit_per_network: int = Field(default=120, ge=1)  # per rate-limit window
    license_activation_rate_limit_per_hour: int = Field(default=20, ge=1)  # per license
    update_link_ttl_minutes: int = Field(default=60, ge=5, le=24 * 60)
    update_link_max_redemptions: int = Field(default=3, ge=1, le=10)

    # Seller, support, legal
    seller_name: str = "GENX Software (draft)"
    seller_country: str = "undecided"
    seller_address: str = ""
    support_email: str = "support@example.com"
    refund_window_days: int = Field(default=14, ge=0, le=365)
    legal_final: bool = False

    # Secrets
    secrets_backend: SecretsBackend = SecretsBackend.ENV

    # Rate limits (requests per window)
    rate_limit_window_seconds: int = Field(default=60, ge=1)
    checkout_rate_limit: int = Field(default=20, ge=1)
    download_rate_limit_per_token: int = Field(default=10, ge=1)
    download_rate_limit_per_network: int = Field(default=30, ge=1)
    order_status_rate_limit_per_network: int = Field(default=120, ge=1)  # success-page polling
    resend_rate_limit_window_seconds: int = Field(default=3600, ge=60)
    resend_rate_limit_per_address: int = Field(default=3, ge=1)
    resend_rate_limit_per_network: int = Field(default=10, ge=1)
    # Re-send requests for one address within this window are one task and one e-mail.
    resend_collapse_window_seconds: int = Field(default=600, ge=60)

    trusted_proxy_hops: int = Field(default=1, ge=0, le=5)  # see domain.network
    # Time within which every Firestore call of a buyer-facing request, the webhook and
    # the license API must finish, else 503 `dependency_timeout` (commerce.deadlines).
    request_budget_seconds: float = Field(default=7.0, gt=0, le=10)
    # The same for the Cloud Tasks and Scheduler workers, below their function timeouts
    # (send_email 60 s, email_sweeper 300 s, reconcile 540 s; Scheduler's attempt
    # deadline is the function timeout): a hung dependency ends the attempt with a 503
    # that Cloud Tasks or Scheduler retries, before the platform stops the instance.
    worker_budget_seconds: float = Field(default=45.0, gt=0, le=50)  # send_email, sweeper
    reconcile_budget_seconds: float = Field(default=480.0, gt=0, le=500)

    log_level: str = "INFO"

    @field_validator("storefront_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip().rstrip("/") for part in value.split(",") if part.strip())
        return value

    @field_validator("payment_currencies", mode="before")
    @classmethod
    def _split_currencies(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip().lower() for part in value.split(",") if part.strip())
        return value

    @field_validator("payment_currencies")
    @classmethod
    def _currency_codes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or not all(len(c) == 3 and c.isalpha() for c in value):
            raise ValueError("a comma-separated list of ISO currency codes, e.g. eur,usd")
        return tuple(c.lower() for c in value)

    @model_validator(mode="after")
    def _cloud_rules(self) -> Settings:
        if self.environment is not Environment.LOCAL:
            if self.secrets_backend is not SecretsBackend.SECRET_MANAGER:
                raise ValueError("SECRETS_BACKEND must be secret-manager outside local")
            if self.url_signing_key_file:
                raise ValueError("URL_SIGNING_KEY_FILE is for local use only; sign through IAM")
            if self.stripe_api_base:
                raise ValueError("STRIPE_API_BASE is for the local Stripe double only")
        return self

    @property
    def is_local(self) -> bool:
        return self.environment is Environment.LOCAL


def settings_values(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables of `environ` that name a setting, keyed by field name."""
    fields = Settings.model_fields
    return {name.lower(): value for name, value in environ.items() if name.lower() in fields}


def load_settings() -> Settings:
    """Read the environment once; on a bad value stop with a message naming the variable."""
    try:
        return Settings.model_validate(settings_values(os.environ))
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = "_".join(str(part) for part in error["loc"]).upper() or "(settings)"
            problems.append(f"{name}: {error['msg']}")
        raise ConfigurationError("invalid configuration: " + "; ".join(problems)) from None
