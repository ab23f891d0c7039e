"""The webhook service against Google's Firestore emulator: exactly-once fulfillment,
ordering, refunds and disputes, fault injection."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from google.cloud.firestore_v1 import FieldFilter

from commerce.domain.models import EmailJobState, LicenseStatus, mask_email
from commerce.domain.orders import OrderState
from commerce.errors import InvalidSignature, TransientFailure
from commerce.purchase.fulfillment import fulfillment_job_id, license_id_for
from commerce.purchase.schemas import Outcome, WebhookDisabled
from tests.purchase import stripe_events as se
from tests.purchase.conftest import (
    WEBHOOK_SECRET,
    count_documents,
    deliver_until_accepted,
    stripe_knows,
)
from tests.support.threads import run_together


def licenses_of(container: Any, session_id: str) -> list[Any]:
    return container.licenses.by_order(session_id)


def paid(session_id: str | None = None, **kwargs: Any) -> dict[str, Any]:
    return se.event("checkout.session.completed", se.checkout_session(session_id, **kwargs))


# -- happy path ------------------------------------------------------------------------------


def test_a_paid_session_yields_one_fulfilled_order_hashed_license_grant_and_pending_job(
    container, deliver, email_queue, clock
):
    evt = paid(email="Jane.Buyer@Example.com", ref="friend", locale="de")
    session_id = evt["data"]["object"]["id"]

    result = deliver(evt)

    assert result.outcome is Outcome.FULFILLED
    order = container.orders.get(session_id)
    assert order.state is OrderState.FULFILLED
    assert order.email_masked == mask_email("Jane.Buyer@Example.com")
    assert order.referral == "friend"
    assert order.locale == "de"
    assert order.amount_total == 4900
    (license_,) = licenses_of(container, session_id)
    assert license_.id == license_id_for(session_id)
    assert license_.status is LicenseStatus.ACTIVE
    key = container.keys.key_for(license_.id, license_.generation, license_.secret_id)
    assert container.keys.hash_key(key) == license_.key_hash
    raw_license = container.db.collection("licenses").document(license_.id).get().to_dict()
    assert key not in str(raw_license)
    (grant,) = container.download_tokens.by_order(session_id)
    assert grant.token_id in order.download_token_ids
    assert grant.max_redemptions == container.settings.download_max_redemptions
    job = container.email_jobs.get(fulfillment_job_id(session_id))
    assert job.state is EmailJobState.PENDING
    assert job.license_ids == (license_.id,)
    assert job.locale == "de"
    customer = container.customers.get(order.customer_id)
    assert customer.email == "jane.buyer@example.com"
    assert session_id in customer.order_ids
    assert email_queue.job_ids == [job.id]
    (audited,) = container.audit_log.for_order(session_id)
    assert (audited.action, audited.license_id) == ("order.fulfilled", license_.id)
    ledger = container.webhook_events.get(evt["id"])
    assert ledger.outcome == "fulfilled"


def test_a_licenses_trail_shows_its_issue_in_the_fulfilment_entry(container, deliver):
    """One audit entry per fulfilment names the order and the license it issues, with
    the details two entries ("order.fulfilled", "license.issued") used to carry; a
    query of the trail by license id, as support runs it, finds it."""
    evt = paid(email="Jane.Buyer@Example.com", ref="friend")
    session_id = evt["data"]["object"]["id"]

    assert deliver(evt).outcome is Outcome.FULFILLED

    (license_,) = licenses_of(container, session_id)
    (grant,) = container.download_tokens.by_order(session_id)
    query = container.db.collection("audit_log").where(
        filter=FieldFilter("license_id", "==", license_.id)
    )
    (entry,) = [snap.to_dict() for snap in query.stream()]
    assert entry["action"] == "order.fulfilled"
    assert (entry["order_id"], entry["event_id"]) == (session_id, evt["id"])
    assert entry["customer_id"] == container.orders.get(session_id).customer_id
    assert entry["details"] == {
        "amount_total": 4900,
        "currency": "eur",
        "referral": "friend",
        "email_job_id": fulfillment_job_id(session_id),
        "key_hint": license_.key_hint,
        "token_id": grant.token_id,
    }


def test_duplicate_delivery_issues_one_license(container, deliver, email_queue):
    evt = paid()
    assert deliver(evt).outcome is Outcome.FULFILLED
    before = count_documents(container.db)

    assert deliver(evt).outcome is Outcome.DUPLICATE

    assert count_documents(container.db) == before
    assert len(licenses_of(container, evt["data"]["object"]["id"])) == 1
    assert len(email_queue.job_ids) == 1


def test_the_same_event_from_eight_threads_issues_one_license(
    container, other_instance, email_queue
):
    evt = paid()
    session_id = evt["data"]["object"]["id"]
    barrier = threading.Barrier(8)
    outcomes: list[Outcome] = []
    errors: list[BaseException] = []

    def deliver_once(instance: Any) -> None:
        try:
            barrier.wait()
            result, _ = deliver_until_accepted(instance, evt)
            outcomes.append(result.outcome)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    # Two instances x four threads: in-instance turns and cross-instance transactions.
    instances = [container, other_instance] * 4
    run_together(deliver_once, [(i,) for i in instances])

    assert errors == []
    assert sorted(outcomes).count(Outcome.FULFILLED) == 1
    assert len(outcomes) == 8
    assert len(licenses_of(container, session_id)) == 1
    assert len(container.download_tokens.by_order(session_id)) == 1
    assert email_queue.job_ids == [fulfillment_job_id(session_id)]


def test_completed_and_async_succeeded_racing_issue_one_license(
    container, other_instance, email_queue
):
    session = se.checkout_session()
    completed = se.event("checkout.session.completed", session)
    succeeded = se.event("checkout.session.async_payment_succeeded", session)
    barrier = threading.Barrier(2)
    outcomes: list[Outcome] = []

    def deliver_once(instance: Any, evt: dict[str, Any]) -> None:
        barrier.wait()
        outcomes.append(deliver_until_accepted(instance, evt)[0].outcome)

    # Different instances, so Firestore's transaction (not an in-process lock) decides.
    pairs = ((container, completed), (other_instance, succeeded))
    run_together(deliver_once, list(pairs))

    assert sorted(outcomes) == sorted([Outcome.FULFILLED, Outcome.ALREADY_FULFILLED])
    assert len(licenses_of(container, session["id"])) == 1
    assert len(container.email_jobs.in_state(EmailJobState.PENDING)) == 1
    assert container.webhook_events.get(completed["id"]) is not None
    assert container.webhook_events.get(succeeded["id"]) is not None


def test_unpaid_completion_records_a_pending_order_and_async_success_fulfils_it(container, deliver):
    session = se.checkout_session(payment_status="unpaid")
    assert deliver(se.event("checkout.session.completed", session)).outcome is Outcome.PENDING
    assert container.orders.get(session["id"]).state is OrderState.PENDING
    assert licenses_of(container, session["id"]) == []

    session_paid = {**session, "payment_status": "paid"}
    result = deliver(se.event("checkout.session.async_payment_succeeded", session_paid))

    assert result.outcome is Outcome.FULFILLED
    assert container.orders.get(session["id"]).state is OrderState.FULFILLED
    assert len(licenses_of(container, session["id"])) == 1


def test_async_payment_failure_marks_the_order_failed_and_issues_nothing(container, deliver):
    session = se.checkout_session(payment_status="unpaid")
    deliver(se.event("checkout.session.completed", session))

    result = deliver(se.event("checkout.session.async_payment_failed", session))

    assert result.outcome is Outcome.FAILED
    assert container.orders.get(session["id"]).state is OrderState.FAILED
    assert licenses_of(container, session["id"]) == []


def test_a_session_of_another_product_is_acknowledged_but_not_fulfilled(container, deliver):
    evt = paid(product_id="other-product")

    assert deliver(evt).outcome is Outcome.IGNORED

    assert container.orders.get(evt["data"]["object"]["id"]) is None
    assert container.webhook_events.get(evt["id"]).outcome == "ignored"


def test_unhandled_event_types_are_recorded_and_acknowledged(container, deliver):
    evt = se.event("customer.created", {"id": "cus_123", "object": "customer"})

    assert deliver(evt).outcome is Outcome.IGNORED
    assert container.webhook_events.get(evt["id"]).type == "customer.created"


# -- refunds and disputes ----------------------------------------------------------------------


def test_a_refund_before_completion_prevents_the_license(container, deliver, stub_sessions):
    session = se.checkout_session()
    stub_sessions.add(session)  # Stripe knows which session made the PaymentIntent
    refund = se.charge(session["payment_intent"], amount_refunded=4900)

    assert deliver(se.event("charge.refunded", refund)).outcome is Outcome.REFUNDED
    result = deliver(se.event("checkout.session.completed", session))

    assert result.outcome is Outcome.BLOCKED
    assert container.orders.get(session["id"]).state is OrderState.REFUNDED
    assert licenses_of(container, session["id"]) == []
    assert container.email_jobs.get(fulfillment_job_id(session["id"])) is None


def test_a_full_refund_revokes_the_license_and_every_download_grant(container, deliver):
    session = se.checkout_session()
    deliver(se.event("checkout.session.completed", session))

    refund = se.charge(session["payment_intent"], amount_refunded=4900)
    assert deliver(se.event("charge.refunded", refund)).outcome is Outcome.REFUNDED

    order = container.orders.get(session["id"])
    assert order.state is OrderState.REFUNDED
    assert order.amount_refunded == 4900
    (license_,) = licenses_of(container, session["id"])
    assert license_.status is LicenseStatus.REVOKED
    assert all(grant.revoked for grant in container.download_tokens.by_order(session["id"]))


def test_a_partial_refund_records_the_amount_only(container, deliver):
    session = se.checkout_session()
    deliver(se.event("checkout.session.completed", session))

    refund = se.charge(session["payment_intent"], amount_refunded=1000)
    assert deliver(se.event("charge.refunded", refund)).outcome is Outcome.PARTIALLY_REFUNDED

    order = container.orders.get(session["id"])
    assert order.state is OrderState.FULFILLED
    assert order.amount_refunded == 1000
    assert licenses_of(container, session["id"])[0].status is LicenseStatus.ACTIVE
    assert not any(g.revoked for g in container.download_tokens.by_order(session["id"]))


def test_a_refund_of_a_charge_that_is_not_ours_is_acknowledged(container, deliver):
    evt = se.event("charge.refunded", se.charge("pi_unknown", amount_refunded=4900))

    assert deliver(evt).outcome is Outcome.NO_ORDER
    assert container.orders.by_payment_intent("pi_unknown") is None


def test_a_dispute_suspends_the_license_and_winning_it_restores(container, deliver):
    session = se.checkout_session()
    deliver(se.event("checkout.session.completed", session))
    intent = session["payment_intent"]

    assert deliver(se.event("charge.dispute.created", se.dispute(intent))).outcome is (
        Outcome.DISPUTED
    )
    assert container.orders.get(session["id"]).state is OrderState.DISPUTED
    assert licenses_of(container, session["id"])[0].status is LicenseStatus.SUSPENDED

    closed = se.event("charge.dispute.closed", se.dispute(intent, status="won"))
    assert deliver(closed).outcome is Outcome.RESTORED
    assert container.orders.get(session["id"]).state is OrderState.FULFILLED
    assert licenses_of(container, session["id"])[0].status is LicenseStatus.ACTIVE


def test_a_lost_dispute_revokes_the_license_and_grants(container, deliver):
    session = se.checkout_session()
    deliver(se.event("checkout.session.completed", session))
    intent = session["payment_intent"]
    deliver(se.event("charge.dispute.created", se.dispute(intent)))

    closed = se.event("charge.dispute.closed", se.dispute(intent, status="lost"))
    assert deliver(closed).outcome is Outcome.REVOKED

    assert container.orders.get(session["id"]).state is OrderState.REVOKED
    assert licenses_of(container, session["id"])[0].status is LicenseStatus.REVOKED
    assert all(grant.revoked for grant in container.download_tokens.by_order(session["id"]))


def assert_mirrored(container: Any, session_id: str, state: OrderState) -> None:
    """The license carries its order's state (license decisions read the license alone)."""
    assert container.orders.get(session_id).state is state
    (license_,) = licenses_of(container, session_id)
    assert license_.order_state is state


State = OrderState


@pytest.mark.parametrize(
    "steps",
    [
        [("refund", 1000, State.FULFILLED), ("refund", 4900, State.REFUNDED)],
        [("dispute", "needs_response", State.DISPUTED), ("dispute", "won", State.FULFILLED)],
        [("dispute", "needs_response", State.DISPUTED), ("dispute", "lost", State.REVOKED)],
        [("dispute", "needs_response", State.DISPUTED), ("refund", 4900, State.REFUNDED)],
        # revoked is final: later events leave both documents as they are
        [("revoke", None, State.REVOKED), ("dispute", "needs_response", State.REVOKED)],
        [("revoke", None, State.REVOKED), ("refund", 4900, State.REVOKED)],
    ],
    ids=[
        "partial-then-full-refund",
        "dispute-won",
        "dispute-lost",
        "dispute-then-refund",
        "support-revoke-then-dispute",
        "support-revoke-then-refund",
    ],
)
def test_every_change_of_the_order_state_is_mirrored_on_the_license(
    container, deliver, steps: list[tuple[str, Any, OrderState]]
):
    session = se.checkout_session()
    deliver(se.event("checkout.session.completed", session))
    intent = session["payment_intent"]
    assert_mirrored(container, session["id"], OrderState.FULFILLED)

    for kind, value, expected in steps:
        if kind == "refund":
            deliver(se.event("charge.refunded", se.charge(intent, amount_refunded=value)))
        elif kind == "dispute":
            name = (
                "charge.dispute.created" if value == "needs_response" else "charge.dispute.closed"
            )
            deliver(se.event(name, se.dispute(intent, status=value)))
        else:
            container.license_support.revoke(
                license_id_for(session["id"]), reason="abuse", actor="test"
            )
        assert_mirrored(container, session["id"], expected)


def test_a_lost_dispute_before_completion_prevents_the_license(container, deliver, stub_sessions):
    session = se.checkout_session()
    stub_sessions.add(session)
    closed = se.event("charge.dispute.closed", se.dispute(session["payment_intent"], status="lost"))

    assert deliver(closed).outcome is Outcome.REVOKED
    assert deliver(se.event("checkout.session.completed", session)).outcome is Outcome.BLOCKED
    assert licenses_of(container, session["id"]) == []


# -- signatures --------------------------------------------------------------------------------


def _signed_delivery(container: Any, evt: dict[str, Any], **kwargs: Any) -> Any:
    stripe_knows(container.stripe_gateway, evt)
    payload, header = se.signed(evt, WEBHOOK_SECRET, **kwargs)
    return container.webhook_service.handle(payload, header)


def test_a_valid_signature_is_accepted(container):
    assert _signed_delivery(container, paid()).outcome is Outcome.FULFILLED


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(
            lambda p, h: (p, se.signed(json.loads(p), "whsec_wrong")[1]), id="wrong-secret"
        ),
        pytest.param(lambda p, h: (p, None), id="missing-header"),
        pytest.param(lambda p, h: (p, ""), id="empty-header"),
        pytest.param(lambda p, h: (p.replace(b"4900", b"0001"), h), id="tampered-body"),
        pytest.param(lambda p, h: (p, "t=123,v1=deadbeef"), id="garbage-header"),
    ],
)  # fmt: skip
def test_a_bad_signature_is_refused_and_writes_nothing(container, forge):
    payload, header = se.signed(paid(), WEBHOOK_SECRET)
    bad_payload, bad_header = forge(payload, header)

    with pytest.raises(InvalidSignature):
        container.webhook_service.handle(bad_payload, bad_header)

    assert count_documents(container.db) == {}


def test_a_stale_timestamp_is_refused_and_writes_nothing(container):
    evt = paid()
    payload, header = se.signed(evt, WEBHOOK_SECRET, timestamp=int(time.time()) - 301)

    with pytest.raises(InvalidSignature):
        container.webhook_service.handle(payload, header)

    assert count_documents(container.db) == {}


def test_without_a_webhook_secret_the_endpoint_is_disabled(container, secret_values):
    del secret_values["STRIPE_WEBHOOK_SECRET"]
    payload, header = se.signed(paid(), WEBHOOK_SECRET)

    with pytest.raises(WebhookDisabled) as refused:
        container.webhook_service.handle(payload, header)

    assert refused.value.status == 503
    assert count_documents(container.db) == {}


# -- faults ------------------------------------------------------------------------------------


def test_a_storage_failure_half_way_writes_nothing_and_redelivery_fulfils_once(
    container, deliver, email_queue, monkeypatch
):
    from google.api_core import exceptions as gexc

    evt = paid()
    session_id = evt["data"]["object"]["id"]
    real_create = container.email_jobs.create

    def failing_create(item: Any, tx: Any = None) -> None:
        # Order, customer, license and grant are already queued in the transaction.
        assert tx is not None
        assert len(tx._write_pbs) >= 4
        raise gexc.ServiceUnavailable("injected: Firestore went away")

    monkeypatch.setattr(container.email_jobs, "create", failing_create)
    with pytest.raises(TransientFailure) as failed:
        deliver(evt)
    assert failed.value.status == 503
    assert count_documents(container.db) == {}
    assert email_queue.job_ids == []

    monkeypatch.setattr(container.email_jobs, "create", real_create)
    assert deliver(evt).outcome is Outcome.FULFILLED
    assert deliver(evt).outcome is Outcome.DUPLICATE
    assert len(licenses_of(container, session_id)) == 1
    assert email_queue.job_ids == [fulfillment_job_id(session_id)]


def test_a_failed_enqueue_leaves_the_job_pending_for_the_sweeper(
    container, deliver, email_queue, caplog
):
    email_queue.fail = True
    evt = paid()

    assert deliver(evt).outcome is Outcome.FULFILLED

    job = container.email_jobs.get(fulfillment_job_id(evt["data"]["object"]["id"]))
    assert job.state is EmailJobState.PENDING
    assert any(getattr(r, "event", None) == "email.enqueue_failed" for r in caplog.records)
