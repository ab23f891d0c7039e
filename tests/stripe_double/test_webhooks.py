"""Events the double delivers: signed like Stripe, retried with backoff, re-sendable."""

from __future__ import annotations

import pytest
import stripe

from .conftest import WEBHOOK_SECRET, Delivery, Double, Receiver


def types_of(deliveries: list[Delivery], prefix: str) -> list[str]:
    return [d.event["type"] for d in deliveries if d.event["type"].startswith(prefix)]


def has_type(event_type: str, count: int = 1):  # type: ignore[no-untyped-def]
    return lambda deliveries: sum(d.event["type"] == event_type for d in deliveries) >= count


def test_paying_delivers_a_signed_checkout_session_completed_event(
    stripe_double: Double, receiver: Receiver, open_session: stripe.checkout.Session
) -> None:
    stripe_double.control(
        f"sessions/{open_session.id}/pay", outcome="paid", email="ada@example.com"
    ).raise_for_status()

    receiver.wait_for(has_type("checkout.session.completed"))
    delivery = receiver.of_type("checkout.session.completed")[0]
    event = stripe.Webhook.construct_event(delivery.body, delivery.signature, WEBHOOK_SECRET)

    assert event.id.startswith("evt_")
    assert (event.object, event.livemode) == ("event", False)
    assert event.api_version
    assert event.request is not None
    session = event.data.object
    assert session.id == open_session.id
    assert (session.status, session.payment_status) == ("complete", "paid")
    assert (session.amount_total, session.amount_subtotal, session.currency) == (4900, 4900, "eur")
    assert session.customer_details.email == "ada@example.com"
    assert session.payment_intent.startswith("pi_")
    assert session.client_reference_id == "ref-42"
    assert session.metadata.to_dict() == {"product": "genx", "ref": "friend"}


def test_signature_does_not_verify_with_another_secret(
    stripe_double: Double, receiver: Receiver, open_session: stripe.checkout.Session
) -> None:
    stripe_double.control(f"sessions/{open_session.id}/pay", outcome="paid").raise_for_status()

    receiver.wait_for(has_type("checkout.session.completed"))
    delivery = receiver.of_type("checkout.session.completed")[0]

    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(delivery.body, delivery.signature, "whsec_other")


def test_failed_deliveries_are_retried_until_the_endpoint_accepts(
    stripe_double: Double, receiver: Receiver, open_session: stripe.checkout.Session
) -> None:
    receiver.answer("charge.succeeded", 500, 500)

    stripe_double.control(f"sessions/{open_session.id}/pay", outcome="paid").raise_for_status()

    deliveries = receiver.wait_for(has_type("charge.succeeded", 3))
    attempts = [d for d in deliveries if d.event["type"] == "charge.succeeded"]
    assert [d.status for d in attempts] == [500, 500, 200]
    assert len({d.event["id"] for d in attempts}) == 1
    for attempt in attempts:
        stripe.Webhook.construct_event(attempt.body, attempt.signature, WEBHOOK_SECRET)
    (delivery,) = stripe_double.settled_deliveries("charge.succeeded")
    assert (delivery["state"], delivery["attempts"], delivery["last_status"]) == (
        "delivered", 3, 200
    )  # fmt: skip


def test_delivery_gives_up_after_the_maximum_attempts(
    stripe_double: Double, receiver: Receiver, open_session: stripe.checkout.Session
) -> None:
    stripe_double.control("config", max_attempts="2").raise_for_status()
    receiver.answer("charge.succeeded", 503, 503)

    stripe_double.control(f"sessions/{open_session.id}/pay", outcome="paid").raise_for_status()
    receiver.wait_for(has_type("charge.succeeded", 2))

    (delivery,) = stripe_double.settled_deliveries("charge.succeeded")
    assert (delivery["state"], delivery["attempts"], delivery["last_status"]) == ("failed", 2, 503)
    assert len(receiver.of_type("charge.succeeded")) == 2


def test_resend_delivers_the_same_event_again(
    stripe_double: Double, receiver: Receiver, open_session: stripe.checkout.Session
) -> None:
    stripe_double.control(f"sessions/{open_session.id}/pay", outcome="paid").raise_for_status()
    receiver.wait_for(has_type("checkout.session.completed"))
    (record,) = stripe_double.events("checkout.session.completed")

    stripe_double.control(f"events/{record['id']}/resend").raise_for_status()

    receiver.wait_for(has_type("checkout.session.completed", 2))
    bodies = [d.body for d in receiver.of_type("checkout.session.completed")]
    assert bodies[0] == bodies[1]


def test_refund_emits_charge_refunded_with_payment_intent_and_metadata(
    stripe_double: Double, receiver: Receiver, open_session: stripe.checkout.Session
) -> None:
    stripe_double.control(f"sessions/{open_session.id}/pay", outcome="paid").raise_for_status()

    refund = stripe_double.control(f"sessions/{open_session.id}/refund", amount="1000")
    stripe_double.control(f"sessions/{open_session.id}/refund").raise_for_status()

    deliveries = receiver.wait_for(has_type("charge.refunded", 2))
    first, second = [d.event["data"]["object"] for d in deliveries
                     if d.event["type"] == "charge.refunded"]  # fmt: skip
    intent_id = receiver.of_type("checkout.session.completed")[0].event["data"]["object"][
        "payment_intent"
    ]
    assert refund.json()["id"].startswith("re_")
    assert first["id"].startswith("ch_")
    assert (first["amount"], first["amount_refunded"], first["refunded"]) == (4900, 1000, False)
    assert (second["amount_refunded"], second["refunded"]) == (4900, True)
    assert first["payment_intent"] == intent_id
    assert first["metadata"] == {"product": "genx", "ref": "friend"}


def test_dispute_is_created_and_closed_with_events(
    stripe_double: Double, receiver: Receiver, open_session: stripe.checkout.Session
) -> None:
    stripe_double.control(f"sessions/{open_session.id}/pay", outcome="paid").raise_for_status()

    dispute = stripe_double.control(f"sessions/{open_session.id}/dispute").json()
    closed = stripe_double.control(f"disputes/{dispute['id']}/close", status="lost")
    again = stripe_double.control(f"disputes/{dispute['id']}/close", status="won")

    receiver.wait_for(has_type("charge.dispute.closed"))
    created_event = receiver.of_type("charge.dispute.created")[0].event
    closed_event = receiver.of_type("charge.dispute.closed")[0].event
    assert dispute["id"].startswith("dp_")
    assert created_event["data"]["object"]["status"] == "needs_response"
    assert created_event["data"]["object"]["payment_intent"].startswith("pi_")
    assert created_event["data"]["object"]["charge"].startswith("ch_")
    assert created_event["data"]["object"]["amount"] == 4900
    assert closed.json()["status"] == "lost"
    assert closed_event["data"]["object"]["status"] == "lost"
    assert closed_event["data"]["previous_attributes"] == {"status": "needs_response"}
    assert again.status_code == 400


def test_delayed_payment_that_succeeds_emits_completed_then_succeeded(
    stripe_double: Double, receiver: Receiver, open_session: stripe.checkout.Session
) -> None:
    stripe_double.control(f"sessions/{open_session.id}/pay", outcome="async_success")

    deliveries = receiver.wait_for(has_type("checkout.session.async_payment_succeeded"))

    sessions = [d.event for d in deliveries if d.event["type"].startswith("checkout.session.")]
    assert [e["type"] for e in sessions] == [
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
    ]
    assert [e["data"]["object"]["payment_status"] for e in sessions] == ["unpaid", "paid"]
    assert sessions[0]["data"]["object"]["status"] == "complete"


def test_delayed_payment_that_fails_emits_completed_then_failed(
    stripe_double: Double, receiver: Receiver, open_session: stripe.checkout.Session
) -> None:
    stripe_double.control(f"sessions/{open_session.id}/pay", outcome="async_fail")

    deliveries = receiver.wait_for(has_type("checkout.session.async_payment_failed"))

    assert types_of(deliveries, "checkout.session.") == [
        "checkout.session.completed",
        "checkout.session.async_payment_failed",
    ]
    failed = receiver.of_type("checkout.session.async_payment_failed")[0].event
    assert failed["data"]["object"]["payment_status"] == "unpaid"


def test_declined_card_leaves_the_session_open(
    stripe_double: Double, receiver: Receiver, open_session: stripe.checkout.Session,
    client: stripe.StripeClient,
) -> None:  # fmt: skip
    stripe_double.control(f"sessions/{open_session.id}/pay", outcome="declined")
    receiver.wait_for(has_type("payment_intent.payment_failed"))

    session = client.v1.checkout.sessions.retrieve(open_session.id)

    assert session.status == "open"
    assert receiver.of_type("checkout.session.completed") == []


def test_refund_of_an_unpaid_session_is_refused(
    stripe_double: Double, open_session: stripe.checkout.Session
) -> None:
    answer = stripe_double.control(f"sessions/{open_session.id}/refund")

    assert answer.status_code == 400
    assert answer.json()["error"]["type"] == "invalid_request_error"
