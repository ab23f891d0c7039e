"""Fulfillment, refunds and disputes through the webhook service, on the in-memory unit
of work (the same flows run on the emulator in tests/purchase)."""

from __future__ import annotations

from typing import Any

import pytest

from commerce.domain.ids import fulfillment_job_id, license_id_for, reconcile_ledger_id
from commerce.domain.models import EmailJobState, License, LicenseStatus, Order, mask_email
from commerce.domain.orders import OrderState
from commerce.domain.tokens import DownloadGrant
from commerce.errors import TransientFailure
from commerce.purchase.schemas import Outcome, SessionFacts
from commerce.repositories.memory import MemoryStorage
from commerce.unit_of_work import UnitOfWork
from tests.purchase import stripe_events as se


def paid(session_id: str | None = None, **kwargs: Any) -> dict[str, Any]:
    return se.event("checkout.session.completed", se.checkout_session(session_id, **kwargs))


def order_of(storage: MemoryStorage, session_id: str) -> Order:
    order = storage.load("orders", session_id)
    assert order is not None
    return order


def license_of(storage: MemoryStorage, session_id: str) -> License | None:
    found: License | None = storage.load("licenses", license_id_for(session_id))
    return found


def grants_of(storage: MemoryStorage, session_id: str) -> list[DownloadGrant]:
    return [
        storage.load("download_tokens", token_hash)
        for token_hash, data in storage.all("download_tokens").items()
        if data["order_id"] == session_id
    ]


def test_a_paid_session_yields_order_license_grant_job_ledger_and_audit_together(
    container: Any, deliver: Any, storage: MemoryStorage, email_queue: Any
) -> None:
    evt = paid(email="Jane.Buyer@Example.com", ref="friend", locale="de")
    session_id = evt["data"]["object"]["id"]

    assert deliver(evt).outcome is Outcome.FULFILLED

    order = order_of(storage, session_id)
    assert order.state is OrderState.FULFILLED
    assert order.email_masked == mask_email("Jane.Buyer@Example.com")
    assert (order.referral, order.locale, order.amount_total) == ("friend", "de", 4900)
    license_ = license_of(storage, session_id)
    assert license_ is not None
    assert license_.status is LicenseStatus.ACTIVE
    key = container.keys.key_for(license_.id, license_.generation, license_.secret_id)
    assert container.keys.hash_key(key) == license_.key_hash
    assert key not in str(storage.all("licenses"))
    (grant,) = grants_of(storage, session_id)
    assert order.download_token_ids == (grant.token_id,)
    job = storage.load("email_jobs", fulfillment_job_id(session_id))
    assert job.state is EmailJobState.PENDING
    assert job.license_ids == (license_.id,)
    customer = storage.load("customers", order.customer_id)
    assert customer.email == "jane.buyer@example.com"
    assert email_queue.job_ids == [job.id]
    assert storage.load("ledger", evt["id"]).outcome == "fulfilled"
    assert storage.audit_actions() == ["order.fulfilled"]
    assert storage.commits == 1  # all of it in one unit of work


def test_a_duplicate_delivery_changes_nothing(deliver: Any, storage: MemoryStorage) -> None:
    evt = paid()
    deliver(evt)
    before = {name: storage.all(name) for name in ("orders", "licenses", "email_jobs")}

    assert deliver(evt).outcome is Outcome.DUPLICATE

    assert {name: storage.all(name) for name in before} == before


def test_a_second_event_for_the_same_session_finds_it_fulfilled(
    deliver: Any, storage: MemoryStorage
) -> None:
    session = se.checkout_session()
    deliver(se.event("checkout.session.completed", session))

    again = deliver(se.event("checkout.session.async_payment_succeeded", session))

    assert again.outcome is Outcome.ALREADY_FULFILLED
    assert len(storage.all("licenses")) == 1


def test_an_unpaid_completion_is_pending_and_async_success_fulfils_it(
    deliver: Any, storage: MemoryStorage
) -> None:
    session = se.checkout_session(payment_status="unpaid", ref="fair")
    assert deliver(se.event("checkout.session.completed", session)).outcome is Outcome.PENDING
    pending = order_of(storage, session["id"])
    assert pending.state is OrderState.PENDING
    assert pending.referral == "fair"

    session["payment_status"] = "paid"
    result = deliver(se.event("checkout.session.async_payment_succeeded", session))

    assert result.outcome is Outcome.FULFILLED
    fulfilled = order_of(storage, session["id"])
    assert fulfilled.state is OrderState.FULFILLED
    assert fulfilled.created_at == pending.created_at


def test_an_async_failure_marks_the_order_failed_and_blocks_fulfillment(
    deliver: Any, storage: MemoryStorage
) -> None:
    session = se.checkout_session(payment_status="unpaid")
    failed = deliver(se.event("checkout.session.async_payment_failed", session))

    assert failed.outcome is Outcome.FAILED
    assert order_of(storage, session["id"]).state is OrderState.FAILED
    session["payment_status"] = "paid"
    assert deliver(se.event("checkout.session.completed", session)).outcome is Outcome.BLOCKED
    assert license_of(storage, session["id"]) is None


def test_another_products_session_and_unknown_events_are_only_acknowledged(
    deliver: Any, storage: MemoryStorage
) -> None:
    other = paid(product_id="other")
    unknown = se.event("customer.created", {"id": "cus_1", "object": "customer"})

    assert deliver(other).outcome is Outcome.IGNORED
    assert deliver(unknown).outcome is Outcome.IGNORED
    assert storage.all("orders") == {}
    assert set(storage.all("webhook_events")) == {other["id"], unknown["id"]}


def test_a_full_refund_revokes_the_license_and_every_grant(
    deliver: Any, storage: MemoryStorage
) -> None:
    session = se.checkout_session()
    deliver(se.event("checkout.session.completed", session))

    refund = se.charge(session["payment_intent"], amount_refunded=4900)
    assert deliver(se.event("charge.refunded", refund)).outcome is Outcome.REFUNDED

    order = order_of(storage, session["id"])
    assert (order.state, order.amount_refunded) == (OrderState.REFUNDED, 4900)
    license_ = license_of(storage, session["id"])
    assert license_ is not None
    assert (license_.status, license_.order_state) == (LicenseStatus.REVOKED, OrderState.REFUNDED)
    assert all(grant.revoked for grant in grants_of(storage, session["id"]))
    assert "license.revoked" in storage.audit_actions()


def test_a_partial_refund_records_the_amount_only(deliver: Any, storage: MemoryStorage) -> None:
    session = se.checkout_session()
    deliver(se.event("checkout.session.completed", session))

    refund = se.charge(session["payment_intent"], amount_refunded=1000)
    assert deliver(se.event("charge.refunded", refund)).outcome is Outcome.PARTIALLY_REFUNDED

    order = order_of(storage, session["id"])
    assert (order.state, order.amount_refunded) == (OrderState.FULFILLED, 1000)
    license_ = license_of(storage, session["id"])
    assert license_ is not None
    assert license_.status is LicenseStatus.ACTIVE
    assert not any(grant.revoked for grant in grants_of(storage, session["id"]))


def test_a_refund_before_completion_blocks_the_license(
    deliver: Any, storage: MemoryStorage, stub_sessions: Any
) -> None:
    session = se.checkout_session()
    stub_sessions.add(session)
    refund = se.charge(session["payment_intent"], amount_refunded=4900)

    assert deliver(se.event("charge.refunded", refund)).outcome is Outcome.REFUNDED
    assert deliver(se.event("checkout.session.completed", session)).outcome is Outcome.BLOCKED

    assert order_of(storage, session["id"]).state is OrderState.REFUNDED
    assert license_of(storage, session["id"]) is None
    assert storage.all("email_jobs") == {}


def test_a_refund_of_a_charge_that_is_not_ours_is_acknowledged(
    deliver: Any, storage: MemoryStorage
) -> None:
    evt = se.event("charge.refunded", se.charge("pi_unknown", amount_refunded=4900))

    assert deliver(evt).outcome is Outcome.NO_ORDER
    assert storage.all("orders") == {}


def test_a_dispute_suspends_the_license_and_winning_it_restores(
    deliver: Any, storage: MemoryStorage
) -> None:
    session = se.checkout_session()
    deliver(se.event("checkout.session.completed", session))
    intent = session["payment_intent"]

    opened = deliver(se.event("charge.dispute.created", se.dispute(intent)))
    assert opened.outcome is Outcome.DISPUTED
    suspended = license_of(storage, session["id"])
    assert suspended is not None
    assert (suspended.status, suspended.order_state) == (
        LicenseStatus.SUSPENDED,
        OrderState.DISPUTED,
    )

    won = deliver(se.event("charge.dispute.closed", se.dispute(intent, status="won")))
    assert won.outcome is Outcome.RESTORED
    restored = license_of(storage, session["id"])
    assert restored is not None
    assert (restored.status, restored.order_state) == (LicenseStatus.ACTIVE, OrderState.FULFILLED)
    assert order_of(storage, session["id"]).state is OrderState.FULFILLED


def test_a_lost_dispute_revokes_the_license_and_grants(
    deliver: Any, storage: MemoryStorage
) -> None:
    session = se.checkout_session()
    deliver(se.event("checkout.session.completed", session))
    intent = session["payment_intent"]
    deliver(se.event("charge.dispute.created", se.dispute(intent)))

    lost = deliver(se.event("charge.dispute.closed", se.dispute(intent, status="lost")))

    assert lost.outcome is Outcome.REVOKED
    assert order_of(storage, session["id"]).state is OrderState.REVOKED
    license_ = license_of(storage, session["id"])
    assert license_ is not None
    assert license_.status is LicenseStatus.REVOKED
    assert all(grant.revoked for grant in grants_of(storage, session["id"]))


def test_a_dispute_still_open_when_closed_with_another_status_is_ignored(
    deliver: Any, storage: MemoryStorage
) -> None:
    session = se.checkout_session()
    deliver(se.event("checkout.session.completed", session))
    intent = session["payment_intent"]
    deliver(se.event("charge.dispute.created", se.dispute(intent)))

    odd = deliver(se.event("charge.dispute.closed", se.dispute(intent, status="under_review")))

    assert odd.outcome is Outcome.IGNORED
    assert order_of(storage, session["id"]).state is OrderState.DISPUTED


def test_a_failure_half_way_writes_nothing_and_redelivery_fulfils_once(
    deliver: Any, storage: MemoryStorage, email_queue: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    evt = paid()
    real = MemoryStorage.unit_of_work

    def failing(self: MemoryStorage) -> UnitOfWork:
        uow = real(self)

        def create(item: Any) -> None:
            raise TransientFailure("injected: storage went away")

        monkeypatch.setattr(uow.email_jobs, "create", create)
        return uow

    monkeypatch.setattr(MemoryStorage, "unit_of_work", failing)
    with pytest.raises(TransientFailure):
        deliver(evt)
    assert storage.counts() == {}
    assert email_queue.job_ids == []

    monkeypatch.setattr(MemoryStorage, "unit_of_work", real)
    assert deliver(evt).outcome is Outcome.FULFILLED
    assert deliver(evt).outcome is Outcome.DUPLICATE
    assert len(storage.all("licenses")) == 1


def test_a_failed_enqueue_leaves_the_job_pending_for_the_sweeper(
    deliver: Any, storage: MemoryStorage, email_queue: Any
) -> None:
    email_queue.fail = True
    evt = paid()

    assert deliver(evt).outcome is Outcome.FULFILLED

    job = storage.load("email_jobs", fulfillment_job_id(evt["data"]["object"]["id"]))
    assert job.state is EmailJobState.PENDING


def test_reconciliation_fulfils_a_paid_session_whose_webhook_was_missed(
    container: Any, storage: MemoryStorage, monkeypatch: pytest.MonkeyPatch, stub_sessions: Any
) -> None:
    missed = se.checkout_session()
    done = se.checkout_session()
    stub_sessions.created(missed)
    monkeypatch.setattr(
        container.stripe_gateway,
        "sessions_created_since",
        lambda since: [missed, done, se.checkout_session(payment_status="unpaid")],
        raising=False,
    )
    container.fulfillment.fulfil(
        SessionFacts.from_stripe(done),
        ledger_id="evt_done",
        event_type="checkout.session.completed",
        event_id="evt_done",
    )

    report = container.reconciler.run(days=3)

    assert report.repaired_sessions == [missed["id"]]
    assert report.already_fulfilled == 1
    assert storage.load("ledger", reconcile_ledger_id(missed["id"])).outcome == "fulfilled"
    assert container.reconciler.run(days=3).repaired == 0
