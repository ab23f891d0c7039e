"""Rotating the license-key pepper: re-hash every key, re-key every customer.

The pepper keys two things that are stored: each license's `key_hash` (HMAC of the key)
and each customer's document id (HMAC of the normalised address), which orders,
licenses and e-mail jobs carry as `customer_id`. Keys are not stored but derived from
ids with the derivation secret(s), so the migration can compute every new hash without
the old pepper and without asking any buyer: customers keep their keys.

Run it in the maintenance window the runbook describes (docs/runbooks/secret-rotation.md),
BEFORE the new pepper becomes the secret's latest version: during the run, migrated
keys validate only under the new pepper. Each license and each customer moves in its
own unit of work that reads what it changes first, so a crash leaves every item either
migrated or not, and running the command again finishes the job (migrated items are
recognised and skipped). Every change is audited; no key, hash or address is logged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from commerce.domain import license_keys
from commerce.keys import customer_id
from commerce.logs import get_logger

if TYPE_CHECKING:
    from commerce.audit import Auditor
    from commerce.clock import Clock
    from commerce.domain.models import Customer, License
    from commerce.keys import KeyService
    from commerce.unit_of_work import Storage, UnitOfWork

_log = get_logger("commerce.rotation")


@dataclass
class RotationReport:
    licenses_rehashed: int = 0
    licenses_already_done: int = 0
    customers_moved: int = 0
    customers_already_done: int = 0
    references_rewritten: int = 0  # orders, licenses and e-mail jobs of moved customers
    problems: list[str] = field(default_factory=list)  # ids only


class PepperRotation:
    def __init__(
        self,
        *,
        keys: KeyService,
        new_pepper: bytes,
        storage: Storage,
        auditor: Auditor,
        clock: Clock,
    ) -> None:
        if new_pepper == keys.material.pepper:
            raise ValueError("the new pepper is the pepper in use")
        self.keys = keys
        self.new_pepper = new_pepper
        self.storage = storage
        self.auditor = auditor
        self.clock = clock

    def run(self, *, actor: str, dry_run: bool = False) -> RotationReport:
        report = RotationReport()
        with self.storage.batch() as listing:
            licenses = listing.licenses.query()
        for license_ in licenses:
            self._rehash(license_, actor, dry_run, report)
        with self.storage.batch() as listing:
            customers = listing.customers.query()
        for customer in customers:
            self._move(customer, actor, dry_run, report)
        if not dry_run:
            self.auditor.record(
                "keys.pepper_rotated",
                actor=actor,
                licenses_rehashed=report.licenses_rehashed,
                customers_moved=report.customers_moved,
                problems=len(report.problems),
            )
        _log.info(
            "pepper rotation %s",
            "checked" if dry_run else "applied",
            extra={
                "event": "keys.pepper_rotation",
                "licenses_rehashed": report.licenses_rehashed,
                "customers_moved": report.customers_moved,
                "problems": len(report.problems),
            },
        )
        return report

    # -- licenses ----------------------------------------------------------------------
    def _new_hash(self, license_: License) -> str:
        key = self.keys.key_for(license_.id, license_.generation, license_.secret_id)
        return license_keys.hash_key(key, self.new_pepper)

    def _rehash(self, license_: License, actor: str, dry_run: bool, report: RotationReport) -> None:
        try:
            wanted = self._new_hash(license_)
        except LookupError:
            report.problems.append(f"{license_.id}: its derivation secret is not configured")
            return
        if license_.key_hash == wanted:
            report.licenses_already_done += 1
            return
        if dry_run:
            report.licenses_rehashed += 1
            return

        def work(uow: UnitOfWork) -> bool:
            current = uow.licenses.get(license_.id)  # re-read: a re-issue may race
            if current is None:
                return False
            new_hash = self._new_hash(current)
            if current.key_hash == new_hash:
                return False
            uow.licenses.update(current.id, {"key_hash": new_hash, "updated_at": self.clock.now()})
            self.auditor.record(
                "license.key_rehashed",
                uow=uow,
                actor=actor,
                license_id=current.id,
                order_id=current.order_id,
                generation=current.generation,
            )
            return True

        if self.storage.run(work):
            report.licenses_rehashed += 1
        else:
            report.licenses_already_done += 1

    # -- customers ---------------------------------------------------------------------
    def _move(self, customer: Customer, actor: str, dry_run: bool, report: RotationReport) -> None:
        new_id = customer_id(customer.email, self.new_pepper)
        if customer.id == new_id:
            report.customers_already_done += 1
            return
        if dry_run:
            report.customers_moved += 1
            return
        old_id = customer.id

        def work(uow: UnitOfWork) -> int | str:
            old_key, new_key = uow.customers.key(old_id), uow.customers.key(new_id)
            found = uow.read(old_key, new_key)
            current, taken = found[old_key], found[new_key]
            if current is None:
                return "gone"
            if taken is not None:
                return "taken"
            orders = uow.orders.where("customer_id", "==", old_id)
            licenses = uow.licenses.where("customer_id", "==", old_id)
            jobs = uow.email_jobs.where("customer_id", "==", old_id)
            now = self.clock.now()
            uow.customers.create(current.model_copy(update={"id": new_id, "updated_at": now}))
            for order in orders:
                uow.orders.update(order.id, {"customer_id": new_id, "updated_at": now})
            for license_ in licenses:
                uow.licenses.update(license_.id, {"customer_id": new_id, "updated_at": now})
            for job in jobs:
                uow.email_jobs.update(job.id, {"customer_id": new_id})
            uow.customers.delete(old_id)
            moved = len(orders) + len(licenses) + len(jobs)
            self.auditor.record(
                "customer.rekeyed",
                uow=uow,
                actor=actor,
                customer_id=new_id,
                previous_customer_id=old_id,
                references=moved,
            )
            return moved

        outcome = self.storage.run(work)
        if outcome == "gone":
            report.customers_already_done += 1
        elif outcome == "taken":
            # Two documents for one address: never merged silently.
            report.problems.append(f"{old_id}: its new id {new_id} already exists")
        else:
            report.customers_moved += 1
            report.references_rewritten += int(outcome)
