"""Support operations on licenses (used by the `commerce license` CLI group).

Support sees hints and masked addresses, never a key: a key typed in by a buyer is
hashed for the lookup and forgotten. Every change is audited with the operator as
actor, in the transaction that makes it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from commerce.domain.ids import reissue_job_id as reissue_job_id  # re-exported
from commerce.domain.models import EmailJobKind, License, LicenseStatus, mask_email
from commerce.domain.orders import OrderState, can_transition, transition
from commerce.errors import Conflict, NotFound
from commerce.grants import new_email_job
from commerce.licensing.schemas import Activation
from commerce.logs import get_logger

if TYPE_CHECKING:
    from commerce.audit import Auditor
    from commerce.clock import Clock
    from commerce.email_queue import EmailQueue
    from commerce.keys import KeyService
    from commerce.licensing.repository import LicenseStateStore
    from commerce.unit_of_work import Storage, UnitOfWork

_log = get_logger("commerce.licensing.support")


class LicenseUnknown(NotFound):
    code = "license_unknown"
    default_detail = "No license with this id."


@dataclass(frozen=True)
class LicenseSummary:
    license_id: str
    key_hint: str
    status: str
    status_reason: str | None
    generation: int
    order_id: str
    order_state: str | None
    email_masked: str | None
    activations_used: int
    activation_limit: int
    created_at: datetime


@dataclass(frozen=True)
class Reissued:
    license_id: str
    generation: int
    key_hint: str
    email_job_id: str | None
    enqueued: bool
    activations_reset: int


class LicenseSupport:
    def __init__(
        self,
        *,
        clock: Clock,
        keys: KeyService,
        store: LicenseStateStore,
        storage: Storage,
        auditor: Auditor,
        email_queue: Callable[[], EmailQueue] | None = None,
    ) -> None:
        self.clock = clock
        self.keys = keys
        self.store = store
        self.storage = storage
        self.auditor = auditor
        self.email_queue = email_queue

    # -- look-ups ------------------------------------------------------------------------
    def by_key(self, raw_key: str) -> list[LicenseSummary]:
        """The license of a key a buyer sent in (a typo raises InvalidLicenseKey)."""
        key_hash = self.keys.hash_key(raw_key)
        with self.storage.batch() as uow:
            found = uow.licenses.where("key_hash", "==", key_hash, limit=1)
        return [self.summary(license_) for license_ in found]

    def by_email(self, email: str) -> list[LicenseSummary]:
        customer_id = self.keys.customer_id_for(email)
        with self.storage.batch() as uow:
            found = uow.licenses.where("customer_id", "==", customer_id)
        return [self.summary(license_) for license_ in sorted(found, key=lambda x: x.created_at)]

    def summary(self, license_: License) -> LicenseSummary:
        with self.storage.batch() as uow:
            order = uow.orders.get(license_.order_id)
            email_masked = order.email_masked if order is not None else None
            if email_masked is None and license_.customer_id:
                customer = uow.customers.get(license_.customer_id)
                email_masked = mask_email(customer.email) if customer is not None else None
        return LicenseSummary(
            license_id=license_.id,
            key_hint=license_.key_hint,
            status=license_.status.value,
            status_reason=license_.status_reason,
            generation=license_.generation,
            order_id=license_.order_id,
            order_state=order.state.value if order is not None else None,
            email_masked=email_masked,
            activations_used=len(license_.activation_ids),
            activation_limit=license_.activation_limit,
            created_at=license_.created_at,
        )

    def activations(self, license_id: str) -> list[Activation]:
        with self.storage.batch() as uow:
            self._license(uow, license_id)
        return self.store.activations_of(license_id)

    # -- changes -------------------------------------------------------------------------
    def reset_activations(self, license_id: str, *, actor: str) -> int:
        """Free every slot of the license (the buyer re-activates the machines they use)."""
        now = self.clock.now()

        def work(uow: UnitOfWork) -> int:
            license_ = self._license(uow, license_id)
            removed = self._clear_activations(uow, license_)
            uow.licenses.update(license_id, {"activation_ids": [], "updated_at": now})
            self.auditor.record(
                "license.activations_reset",
                uow=uow,
                actor=actor,
                license_id=license_id,
                order_id=license_.order_id,
                removed=removed,
            )
            return removed

        return self.storage.run(work)

    def revoke(self, license_id: str, *, reason: str, actor: str) -> License:
        """Revoke the license (and its order, so download links stop too)."""
        now = self.clock.now()

        def work(uow: UnitOfWork) -> License:
            license_ = self._license(uow, license_id)
            order = uow.orders.get(license_.order_id)
            order_state = order.state if order is not None else None
            if order is not None and can_transition(order.state, OrderState.REVOKED):
                order_state = transition(order.state, OrderState.REVOKED)
            # Support's word is final: the reason is recorded even on a revoked license.
            standing = license_.mirror(
                order_state, now, status=LicenseStatus.REVOKED, status_reason=reason
            )
            if order is not None and order_state is not order.state:
                uow.orders.update(order.id, {"state": order_state, "updated_at": now})
            uow.licenses.update(license_id, standing or {})
            self.auditor.record(
                "license.revoked",
                uow=uow,
                actor=actor,
                license_id=license_id,
                order_id=license_.order_id,
                reason=reason,
                order_state=order_state.value if order_state else None,
            )
            return license_.model_copy(
                update={"status": LicenseStatus.REVOKED, "status_reason": reason}
            )

        return self.storage.run(work)

    def set_beta(self, license_id: str, *, on: bool, actor: str) -> bool:
        """Opt the license in to (or out of) the beta channel's updates. Returns whether
        anything changed; the change (or the no-op) is audited with the operator."""
        now = self.clock.now()

        def work(uow: UnitOfWork) -> bool:
            license_ = self._license(uow, license_id)
            changed = license_.beta_opt_in is not on
            if changed:
                uow.licenses.update(license_id, {"beta_opt_in": on, "updated_at": now})
            self.auditor.record(
                "license.beta_opt_in" if on else "license.beta_opt_out",
                uow=uow,
                actor=actor,
                license_id=license_id,
                order_id=license_.order_id,
                changed=changed,
            )
            return changed

        return self.storage.run(work)

    def reissue(self, license_id: str, *, actor: str, keep_activations: bool = False) -> Reissued:
        """A new key (generation + 1): the old key stops working at once, the buyer is
        e-mailed the new one. Activations are reset unless kept (a leaked key's
        machines should not keep their slots)."""
        now = self.clock.now()

        def work(uow: UnitOfWork) -> Reissued:
            license_ = self._license(uow, license_id)
            if license_.status is LicenseStatus.REVOKED:
                raise Conflict("A revoked license cannot be re-issued.")
            generation = license_.generation + 1
            issued = self.keys.issue_key(license_id, generation)
            removed = 0 if keep_activations else self._clear_activations(uow, license_)
            changes: dict[str, object] = {
                "key_hash": issued.key_hash,
                "key_hint": issued.key_hint,
                "generation": generation,
                "secret_id": issued.secret_id,
                "updated_at": now,
            }
            if not keep_activations:
                changes["activation_ids"] = []
            uow.licenses.update(license_id, changes)
            job_id: str | None = None
            if license_.customer_id:
                job_id = reissue_job_id(license_id, generation)
                job = new_email_job(
                    job_id,
                    kind=EmailJobKind.REISSUE,
                    customer_id=license_.customer_id,
                    now=now,
                    order_ids=(license_.order_id,),
                    license_ids=(license_id,),
                )
                uow.email_jobs.create(job)
            self.auditor.record(
                "license.reissued",
                uow=uow,
                actor=actor,
                license_id=license_id,
                order_id=license_.order_id,
                generation=generation,
                key_hint=issued.key_hint,
                email_job_id=job_id,
                activations_reset=removed,
            )
            self.store.forget(license_.key_hash)
            return Reissued(license_id, generation, issued.key_hint, job_id, False, removed)

        result = self.storage.run(work)
        if result.email_job_id is None or self.email_queue is None:
            return result
        try:
            self.email_queue().enqueue(result.email_job_id)
        except Exception as exc:  # the job stays pending; the sweeper enqueues it again
            _log.warning(
                "re-issue e-mail not enqueued: %s",
                type(exc).__name__,
                extra={"event": "license.reissue_enqueue_failed", "job_id": result.email_job_id},
            )
            return result
        return Reissued(
            result.license_id,
            result.generation,
            result.key_hint,
            result.email_job_id,
            True,
            result.activations_reset,
        )

    # -- helpers -------------------------------------------------------------------------
    @staticmethod
    def _license(uow: UnitOfWork, license_id: str) -> License:
        found = uow.licenses.get(license_id)
        if found is None:
            raise LicenseUnknown(f"No license {license_id}.")
        return found

    @staticmethod
    def _clear_activations(uow: UnitOfWork, license_: License) -> int:
        """Delete every activation of the license (reads first, then writes); the caller
        empties the license's `activation_ids` in the same unit of work."""
        strays = uow.activations.where("license_id", "==", license_.id)
        ids = set(license_.activation_ids) | {a.id for a in strays}
        for activation_id in sorted(ids):
            uow.activations.delete(activation_id)
        return len(ids)
