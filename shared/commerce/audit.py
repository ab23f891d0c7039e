"""The audit trail of commerce-critical events (orders, licenses, downloads, e-mails).

Entries name ids and outcomes only: never keys, tokens, secrets or full addresses.
Written inside the same transaction as the change they describe when there is one.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from commerce.clock import Clock
from commerce.domain.models import AuditEntry
from commerce.logs import get_logger, redact
from commerce.repositories import AuditLogRepository, Transaction

AUDIT_RETENTION = timedelta(days=730)
_log = get_logger("commerce.audit")


class Auditor:
    def __init__(self, repository: AuditLogRepository, clock: Clock) -> None:
        self.repository = repository
        self.clock = clock

    def record(
        self,
        action: str,
        *,
        tx: Transaction | None = None,
        actor: str = "system",
        order_id: str | None = None,
        license_id: str | None = None,
        customer_id: str | None = None,
        event_id: str | None = None,
        **details: Any,
    ) -> AuditEntry:
        now = self.clock.now()
        entry = AuditEntry(
            action=action,
            at=now,
            actor=actor,
            order_id=order_id,
            license_id=license_id,
            customer_id=customer_id,
            event_id=event_id,
            details=redact(details),
            purge_at=now + AUDIT_RETENTION,
        )
        self.repository.append(entry, tx)
        _log.info(
            "audit %s",
            action,
            extra={"event": f"audit.{action}", "order_id": order_id, "license_id": license_id},
        )
        return entry
