"""The one composition root: Settings -> clients -> services.

`get_container()` builds the process-wide container on first use (settings read
once; clients created lazily and reused across invocations, as Cloud Functions
recommend). Tests build their own `Container(...)` with fakes or emulator clients
and install it with `use_container`.

Heavy SDKs are imported inside the properties that need them, so a function only
pays the import cost of what it uses (the download function never imports stripe,
sendgrid or the Tasks client).
"""

from __future__ import annotations

import threading
from functools import cached_property
from typing import TYPE_CHECKING

from commerce.clock import Clock, SystemClock
from commerce.logs import configure_logging
from commerce.secrets import EnvSecrets, SecretManagerSecrets, SecretSource
from commerce.settings import SecretsBackend, Settings, load_settings

if TYPE_CHECKING:
    from google.cloud import firestore

    from commerce.adapters.artifacts import ArtifactStore
    from commerce.adapters.tasks_queue import CloudTasksEmailQueue
    from commerce.audit import Auditor
    from commerce.delivery.download import DownloadService
    from commerce.delivery.email_worker import EmailWorker
    from commerce.delivery.mailers import Mailer
    from commerce.keys import KeyService
    from commerce.licensing.repository import LicenseStateStore
    from commerce.licensing.service import LicenseService
    from commerce.licensing.support import LicenseSupport
    from commerce.pseudonyms import Pseudonyms
    from commerce.purchase.attention import OrderAttention
    from commerce.purchase.checkout import CheckoutService
    from commerce.purchase.fulfillment import Fulfillment
    from commerce.purchase.gateway import StripeGateway
    from commerce.purchase.ledger import EventLedger
    from commerce.purchase.reconciliation import Reconciler
    from commerce.purchase.verification import PaidSessions
    from commerce.purchase.webhooks import WebhookService
    from commerce.ratelimit import RateLimiter
    from commerce.releases.repository import ReleaseStore
    from commerce.releases.service import Publisher
    from commerce.repositories.collections import (
        AuditLogRepository,
        CustomerRepository,
        DownloadTokenRepository,
        EmailJobRepository,
        LicenseRepository,
        OrderRepository,
        WebhookEventRepository,
    )
    from commerce.repositories.rate_limits import RateLimitRepository
    from commerce.rotation import PepperRotation
    from commerce.signing import Signer
    from commerce.storefront.order_status import OrderStatusService
    from commerce.storefront.resend import ResendLinks
    from commerce.unit_of_work import Storage


def secrets_for(settings: Settings) -> SecretSource:
    if settings.secrets_backend is SecretsBackend.SECRET_MANAGER:
        return SecretManagerSecrets(settings.gcp_project)
    return EnvSecrets()


class Container:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        secrets: SecretSource | None = None,
    ) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.secrets: SecretSource = secrets or secrets_for(settings)

    # -- storage ---------------------------------------------------------------------
    @cached_property
    def db(self) -> firestore.Client:
        from commerce.repositories.base import new_firestore_client

        return new_firestore_client(self.settings.gcp_project)

    @cached_property
    def storage(self) -> Storage:
        """Units of work (Firestore; tests may install `MemoryStorage`). Built on the
        container's repositories, so a test that wraps one sees the units' calls."""
        from commerce.repositories.unit_of_work import FirestoreStorage

        return FirestoreStorage(
            self.db,
            orders=self.orders,
            customers=self.customers,
            licenses=self.licenses,
            download_tokens=self.download_tokens,
            email_jobs=self.email_jobs,
            ledger=self.webhook_events,
            audit=self.audit_log,
        )

    @cached_property
    def orders(self) -> OrderRepository:
        from commerce.repositories.collections import OrderRepository

        return OrderRepository(self.db)

    @cached_property
    def customers(self) -> CustomerRepository:
        from commerce.repositories.collections import CustomerRepository

        return CustomerRepository(self.db)

    @cached_property
    def licenses(self) -> LicenseRepository:
        from commerce.repositories.collections import LicenseRepository

        return LicenseRepository(self.db)

    @cached_property
    def download_tokens(self) -> DownloadTokenRepository:
        from commerce.repositories.collections import DownloadTokenRepository

        return DownloadTokenRepository(self.db)

    @cached_property
    def webhook_events(self) -> WebhookEventRepository:
        from commerce.repositories.collections import WebhookEventRepository

        return WebhookEventRepository(self.db)

    @cached_property
    def email_jobs(self) -> EmailJobRepository:
        from commerce.repositories.collections import EmailJobRepository

        return EmailJobRepository(self.db)

    @cached_property
    def audit_log(self) -> AuditLogRepository:
        from commerce.repositories.collections import AuditLogRepository

        return AuditLogRepository(self.db)

    @cached_property
    def rate_limits(self) -> RateLimitRepository:
        from commerce.repositories.rate_limits import RateLimitRepository

        return RateLimitRepository(self.db)

    # -- services --------------------------------------------------------------------
    @cached_property
    def auditor(self) -> Auditor:
        from commerce.audit import Auditor

        return Auditor(self.storage, self.clock)

    @cached_property
    def keys(self) -> KeyService:
        from commerce.keys import KeyService

        return KeyService(self.secrets, self.settings.license_key_prefix)

    @cached_property
    def rate_limiter(self) -> RateLimiter:
        from commerce.ratelimit import RateLimiter

        return RateLimiter(
            self.rate_limits,
            self.clock,
            self.settings.rate_limit_window_seconds,
            bucket_key=lambda bucket: self.pseudonyms.bucket(bucket),
        )

    @cached_property
    def pseudonyms(self) -> Pseudonyms:
        from commerce.pseudonyms import Pseudonyms

        return Pseudonyms(self.secrets)

    @cached_property
    def signer(self) -> Signer:
        from commerce.signing import Signer

        return Signer(self.secrets)

    # Services of the purchase, delivery and licensing features are added below as
    # cached properties, each importing its SDK lazily.

    # -- purchase ----------------------------------------------------------------------
    @cached_property
    def stripe_gateway(self) -> StripeGateway:
        """The official Stripe client (the local double when STRIPE_API_BASE is set)."""
        from commerce.purchase.gateway import StripeGateway

        return StripeGateway.from_settings(self.settings, self.secrets)

    @cached_property
    def fulfillment(self) -> Fulfillment:
        from commerce.purchase.fulfillment import Fulfillment

        return Fulfillment(
            settings=self.settings,
            clock=self.clock,
            keys=self.keys,
            auditor=self.auditor,
            storage=self.storage,
            ledger=self.ledger,
            email_queue=lambda: self.email_queue,  # built on first enqueue, after commit
        )

    @cached_property
    def order_attention(self) -> OrderAttention:
        from commerce.purchase.attention import OrderAttention

        return OrderAttention(
            storage=self.storage,
            keys=self.keys,
            auditor=self.auditor,
            clock=self.clock,
            email_queue=lambda: self.email_queue,
        )

    @cached_property
    def ledger(self) -> EventLedger:
        from commerce.purchase.ledger import EventLedger

        return EventLedger(self.storage, self.clock)

    @cached_property
    def checkout_service(self) -> CheckoutService:
        from commerce.purchase.checkout import CheckoutService

        return CheckoutService(
            settings=self.settings,
            gateway=self.stripe_gateway,
            rate_limiter=self.rate_limiter,
            clock=self.clock,
        )

    @cached_property
    def webhook_service(self) -> WebhookService:
        from commerce.purchase.webhooks import WebhookService

        return WebhookService(
            secrets=self.secrets,
            fulfillment=self.fulfillment,
            storage=self.storage,
            gateway=self.stripe_gateway,
            auditor=self.auditor,
            paid_sessions=self.paid_sessions,
        )

    @cached_property
    def paid_sessions(self) -> PaidSessions:
        """Verify a paid session with Stripe, then fulfil or reject it (webhook, reconcile)."""
        from commerce.purchase.verification import PaidSessions, SessionVerifier

        verifier = SessionVerifier(settings=self.settings, gateway=self.stripe_gateway)
        return PaidSessions(verifier=verifier, fulfillment=self.fulfillment)

    @cached_property
    def reconciler(self) -> Reconciler:
        from commerce.purchase.reconciliation import Reconciler, Repair

        return Reconciler(
            gateway=self.stripe_gateway,
            repair=lambda: Repair(self.fulfillment, self.paid_sessions, self.webhook_service),
            storage=self.storage,
            clock=self.clock,
            product_id=self.settings.product_id,
            default_days=self.settings.reconcile_lookback_days,
        )

    # -- storefront --------------------------------------------------------------------
    @cached_property
    def order_status_service(self) -> OrderStatusService:
        """The success page's look-up (state and masked address only)."""
        from commerce.storefront.order_status import OrderStatusService

        return OrderStatusService(self.storage)

    @cached_property
    def resend_service(self) -> ResendLinks:
        """The re-send form's service and its Cloud Tasks step (`send_email` with
        `{"resend": ...}`)."""
        from commerce.storefront.resend import ResendLinks

        return ResendLinks(
            settings=self.settings,
            clock=self.clock,
            keys=self.keys,
            rate_limiter=self.rate_limiter,
            storage=self.storage,
            auditor=self.auditor,
            queue=lambda: self.email_queue,  # built on first enqueue
            deliver=lambda job_id, **kw: self.email_worker.deliver(job_id, **kw),
        )

    # -- delivery ----------------------------------------------------------------------
    @cached_property
    def email_queue(self) -> CloudTasksEmailQueue:
        """Cloud Tasks (emulator locally); the Tasks client is created on first enqueue."""
        from commerce.adapters.tasks_queue import CloudTasksEmailQueue

        return CloudTasksEmailQueue(self.settings)

    @cached_property
    def releases(self) -> ReleaseStore:
        """Published versions, through the storage port."""
        from commerce.releases.repository import ReleaseStore

        return ReleaseStore(self.storage)

    @cached_property
    def artifacts(self) -> ArtifactStore:
        """The artifacts bucket (storage emulator locally); URL signing per environment."""
        from commerce.adapters.artifacts import ArtifactStore

        return ArtifactStore(self.settings)

    @cached_property
    def publisher(self) -> Publisher:
        from commerce.releases.service import Publisher

        return Publisher(
            store=self.artifacts, releases=self.releases, signer=self.signer, clock=self.clock
        )

    @cached_property
    def download_service(self) -> DownloadService:
        from commerce.delivery.download import DownloadService

        return DownloadService(
            settings=self.settings,
            clock=self.clock,
            storage=self.storage,
            releases=self.releases,
            rate_limiter=self.rate_limiter,
            auditor=self.auditor,
            artifacts=self.artifacts,
            network_hash=lambda network: self.pseudonyms.network(network),
        )

    @cached_property
    def mailer(self) -> Mailer:
        """SMTP (maildev locally) or SendGrid, by MAIL_BACKEND; SendGrid imported lazily."""
        from commerce.delivery.mailers import SendGridMailer, SmtpMailer
        from commerce.secrets import SecretName
        from commerce.settings import MailBackend

        if self.settings.mail_backend is MailBackend.SENDGRID:
            return SendGridMailer(
                self.secrets.get(SecretName.SENDGRID_API_KEY),
                host=self.settings.sendgrid_api_host,
            )
        return SmtpMailer(self.settings.smtp_host, self.settings.smtp_port)

    @cached_property
    def email_worker(self) -> EmailWorker:
        from commerce.delivery.email_worker import EmailWorker

        return EmailWorker(
            settings=self.settings,
            clock=self.clock,
            storage=self.storage,
            releases=self.releases,
            keys=self.keys,
            auditor=self.auditor,
            mailer=lambda: self.mailer,
            queue=lambda: self.email_queue,
        )

    # -- licensing ---------------------------------------------------------------------
    @cached_property
    def license_state(self) -> LicenseStateStore:
        """Activations and the batched license reads (identity cache per process)."""
        from commerce.licensing.repository import LicenseStateStore

        return LicenseStateStore(self.storage)

    @cached_property
    def license_service(self) -> LicenseService:
        from commerce.licensing.service import LicenseService

        return LicenseService(
            settings=self.settings,
            clock=self.clock,
            keys=self.keys,
            signer=self.signer,
            store=self.license_state,
            storage=self.storage,
            rate_limiter=self.rate_limiter,
            auditor=self.auditor,
            network_hash=lambda network: self.pseudonyms.network(network),
            releases=self.releases,
        )

    @cached_property
    def license_support(self) -> LicenseSupport:
        from commerce.licensing.support import LicenseSupport

        return LicenseSupport(
            clock=self.clock,
            keys=self.keys,
            store=self.license_state,
            storage=self.storage,
            auditor=self.auditor,
            email_queue=lambda: self.email_queue,
        )

    def pepper_rotation(self, new_pepper: bytes) -> PepperRotation:
        """The migration to a new license-key pepper (an operator command, not a function)."""
        from commerce.rotation import PepperRotation

        return PepperRotation(
            keys=self.keys,
            new_pepper=new_pepper,
            storage=self.storage,
            auditor=self.auditor,
            clock=self.clock,
        )


_container: Container | None = None
_lock = threading.Lock()


def get_container() -> Container:
    """The process-wide container, built on first use from the environment."""
    global _container
    with _lock:
        if _container is None:
            settings = load_settings()
            configure_logging(settings.log_level, settings.gcp_project)
            _container = Container(settings)
        return _container


def has_container() -> bool:
    """Whether a container is built or installed (the CLI configures only when not)."""
    with _lock:
        return _container is not None


def use_container(container: Container | None) -> None:
    """Install a container (tests) or clear it (None) so the next call rebuilds."""
    global _container
    with _lock:
        _container = container
