"""The audit trail of commerce-critical events (orders, licenses, downloads, e-mails).

Entries name ids and outcomes only: never keys, tokens, secrets or full addresses; a
client network only by its keyed hash (`commerce.pseudonyms`), and such entries are
purged after 180 days instead of two years (docs/data-model.md).
Written inside the same unit of work as the change they describe when there is one
(`uow=`); on their own (a refusal, an offer) in a batch of one write.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from commerce.clock import Clock
from commerce.domain.models import AuditEntry
from commerce.logs import get_logger, redact

if TYPE_CHECKING:
    from commerce.unit_of_work import Storage, UnitOfWork

AUDIT_RETENTION = timedelta(days=730)
# Entries that name a client network (its keyed hash, `network`): long enough for a
# card dispute (Stripe allows up to 120 days after the charge) with margin, not longer.
NETWORK_AUDIT_RETENTION = timedelta(days=180)
_log = get_logger("commerce.audit")


class Auditor:
    def __init__(self, storage: Storage, clock: Clock) -> None:
        self.storage = storage
        self.clock = clock

    def record(
        self,
        action: str,
        *,
        uow: UnitOfWork | None = None,
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
            purge_at=now + (NETWORK_AUDIT_RETENTION if "network" in details else AUDIT_RETENTION),
        )
        if uow is not None:
            uow.audit.append(entry)
        else:
            with self.storage.batch() as alone:
                alone.audit.append(entry)
                alone.commit()
        _log.info(
            "audit %s",
            action,
            extra={"event": f"audit.{action}", "order_id": order_id, "license_id": license_id},
        )
        return entry
