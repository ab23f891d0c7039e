"""The once-per-event ledger: a change driven by an outside event happens once or not
at all.

`EventLedger.once` runs a change in one unit of work together with its ledger entry
(`webhook_events/{ledger id}`: a Stripe event id, or `reconcile:<session id>` for a
session repaired by reconciliation). The entry and the documents the change may need
are read together before any write, and the entry is written last: a repeat of the
event finds it and changes nothing (DUPLICATE); two deliveries racing for one event
collide on it, and the loser re-runs, sees the winner's entry and changes nothing.
Used by the Stripe webhook and by reconciliation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from commerce.clock import Clock
from commerce.domain.ids import reconcile_ledger_id as reconcile_ledger_id  # re-exported
from commerce.domain.models import WebhookEventRecord
from commerce.purchase.schemas import Outcome
from commerce.unit_of_work import Found, Key, Storage, UnitOfWork

LEDGER_RETENTION = timedelta(days=90)


@dataclass(frozen=True)
class Change:
    """What a change decided; `email_job_id` is enqueued after commit."""

    outcome: Outcome
    order_id: str | None = None
    email_job_id: str | None = None


# decide(uow, now, found): the change, from the documents read with the ledger entry
Decide = Callable[[UnitOfWork, datetime, Found], Change]


class EventLedger:
    def __init__(self, storage: Storage, clock: Clock) -> None:
        self.storage = storage
        self.clock = clock

    def already_recorded(self, ledger_id: str) -> bool:
        """A cheap pre-check (outside any transaction) to skip provider lookups; the
        read inside `once` is what decides."""
        with self.storage.batch() as uow:
            return uow.ledger.get(ledger_id) is not None

    def once(
        self,
        ledger_id: str,
        event_type: str,
        decide: Decide,
        reads: Callable[[UnitOfWork], list[Key[Any]]] = lambda uow: [],
    ) -> Change:
        """`decide` and the ledger entry in one unit of work, once per ledger id.

        `reads(uow)` names the documents `decide` needs; they are read in the same
        batch as the ledger entry (one round trip) and handed to `decide` by key.
        """

        def work(uow: UnitOfWork) -> Change:
            entry = uow.ledger.key(ledger_id)
            found = uow.read(entry, *reads(uow))
            if found[entry] is not None:
                return Change(Outcome.DUPLICATE)
            now = self.clock.now()
            change = decide(uow, now, found)
            uow.ledger.create(
                WebhookEventRecord(
                    id=ledger_id,
                    type=event_type,
                    received_at=now,
                    outcome=change.outcome.value,
                    order_id=change.order_id,
                    purge_at=now + LEDGER_RETENTION,
                )
            )
            return change

        return self.storage.run(work)
