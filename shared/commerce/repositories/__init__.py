"""Firestore repositories: the only code that touches the Firestore client.

Every method takes an optional transaction. Reads inside a transaction must come
before its writes (Firestore's rule); services arrange that.
"""

from commerce.repositories.base import Transaction, new_firestore_client, run_transaction
from commerce.repositories.collections import (
    ActivationRepository,
    AuditLogRepository,
    CustomerRepository,
    DownloadTokenRepository,
    EmailJobRepository,
    LicenseRepository,
    OrderRepository,
    WebhookEventRepository,
)
from commerce.repositories.rate_limits import RateLimitRepository

__all__ = [
    "ActivationRepository",
    "AuditLogRepository",
    "CustomerRepository",
    "DownloadTokenRepository",
    "EmailJobRepository",
    "LicenseRepository",
    "OrderRepository",
    "RateLimitRepository",
    "Transaction",
    "WebhookEventRepository",
    "new_firestore_client",
    "run_transaction",
]
