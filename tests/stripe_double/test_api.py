"""The official `stripe` library talks to the double through configuration only."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest
import requests
import stripe

from .conftest import API_KEY, Double

if TYPE_CHECKING:
    from stripe.params.checkout import SessionCreateParams


def test_product_and_price_are_created_and_found_by_lookup_key(
    client: stripe.StripeClient,
) -> None:
    product = client.v1.products.create({"name": "GENX plugin", "metadata": {"sku": "genx-1"}})
    price = client.v1.prices.create(
        {"product": product.id, "currency": "eur", "unit_amount": 4900, "lookup_key": "genx_eur"}
    )

    found = client.v1.prices.list({"lookup_keys": ["genx_eur"], "expand": ["data.product"]})

    assert product.id.startswith("prod_")
    assert product.metadata["sku"] == "genx-1"
    assert product.livemode is False
    assert price.id.startswith("price_")
    assert (price.type, price.unit_amount, price.currency) == ("one_time", 4900, "eur")
    assert [p.id for p in found.data] == [price.id]
    expanded_product = found.data[0].product
    assert isinstance(expanded_product, stripe.Product)
    assert expanded_product.name == "GENX plugin"
    assert found["object"] == "list"
    assert found.url == "/v1/prices"
    assert found.has_more is False


def test_lookup_key_in_use_is_refused_unless_transferred(
    client: stripe.StripeClient, price: stripe.Price
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.prices.create(
            {"product": str(price.product), "currency": "eur", "unit_amount": 5900,
             "lookup_key": "genx_eur"}
        )  # fmt: skip
    assert refused.value.param == "lookup_key"

    successor = client.v1.prices.create(
        {"product": str(price.product), "currency": "eur", "unit_amount": 5900,
         "lookup_key": "genx_eur", "transfer_lookup_key": True}
    )  # fmt: skip

    found = client.v1.prices.list({"lookup_keys": ["genx_eur"]})
    assert [p.id for p in found.data] == [successor.id]
    assert client.v1.prices.retrieve(price.id).lookup_key is None


def test_product_and_price_updates_follow_stripe_metadata_rules(
    client: stripe.StripeClient, price: stripe.Price
) -> None:
    product_id = str(price.product)
    client.v1.products.update(product_id, {"metadata": {"a": "1", "b": "2"}})
    updated = client.v1.products.update(product_id, {"name": "GENX 2", "metadata": {"a": ""}})
    client.v1.prices.update(price.id, {"active": False})

    assert updated.name == "GENX 2"
    assert updated.metadata.to_dict() == {"b": "2"}
    assert client.v1.prices.list({"product": product_id, "active": True}).data == []
    assert client.v1.products.retrieve(product_id).name == "GENX 2"


def test_price_search_finds_by_lookup_key(client: stripe.StripeClient, price: stripe.Price) -> None:
    result = client.v1.prices.search({"query": "lookup_key:'genx_eur' AND active:'true'"})

    assert [p.id for p in result.data] == [price.id]


def test_checkout_session_has_stripe_shape(
    client: stripe.StripeClient, open_session: stripe.checkout.Session, stripe_double: Double
) -> None:
    assert open_session.id.startswith("cs_test_")
    assert open_session.object == "checkout.session"
    assert open_session.url == f"{stripe_double.url}/pay/{open_session.id}"
    assert (open_session.status, open_session.payment_status) == ("open", "unpaid")
    assert (open_session.amount_total, open_session.currency) == (4900, "eur")
    assert open_session.success_url == "http://shop.test/thanks?session={CHECKOUT_SESSION_ID}"
    assert open_session.client_reference_id == "ref-42"
    assert open_session.metadata is not None
    assert open_session.metadata.to_dict() == {"product": "genx", "ref": "friend"}
    assert open_session.payment_intent is None
    assert open_session.expires_at > open_session.created


def test_same_idempotency_key_and_parameters_return_the_same_session(
    client: stripe.StripeClient, price: stripe.Price
) -> None:
    params: SessionCreateParams = {
        "mode": "payment",
        "line_items": [{"price": price.id, "quantity": 1}],
        "customer_email": "buyer@example.com",
        "locale": "de",
        "allow_promotion_codes": True,
    }

    first = client.v1.checkout.sessions.create(params, {"idempotency_key": "double-click-1"})
    second = client.v1.checkout.sessions.create(params, {"idempotency_key": "double-click-1"})
    third = client.v1.checkout.sessions.create(params, {"idempotency_key": "another-click"})

    assert first.id == second.id
    assert third.id != first.id
    assert len(client.v1.checkout.sessions.list().data) == 2
    assert (first.locale, first.customer_email, first.allow_promotion_codes) == (
        "de", "buyer@example.com", True
    )  # fmt: skip


def test_same_idempotency_key_with_other_parameters_is_an_idempotency_error(
    client: stripe.StripeClient, price: stripe.Price
) -> None:
    client.v1.checkout.sessions.create(
        {"mode": "payment", "line_items": [{"price": price.id, "quantity": 1}]},
        {"idempotency_key": "reused-key"},
    )

    with pytest.raises(stripe.IdempotencyError):
        client.v1.checkout.sessions.create(
            {"mode": "payment", "line_items": [{"price": price.id, "quantity": 2}]},
            {"idempotency_key": "reused-key"},
        )


def test_session_is_retrieved_with_line_items_and_listed(
    client: stripe.StripeClient, open_session: stripe.checkout.Session
) -> None:
    retrieved = client.v1.checkout.sessions.retrieve(open_session.id, {"expand": ["line_items"]})
    line_items = client.v1.checkout.sessions.line_items.list(open_session.id)
    listed = client.v1.checkout.sessions.list(
        {"created": {"gte": open_session.created}, "status": "open", "limit": 5}
    )

    assert retrieved.line_items is not None
    assert retrieved.line_items.data[0].price == line_items.data[0].price
    assert line_items.data[0].description == "GENX plugin"
    assert (line_items.data[0].quantity, line_items.data[0].amount_total) == (1, 4900)
    assert line_items.url == f"/v1/checkout/sessions/{open_session.id}/line_items"
    assert [s.id for s in listed.data] == [open_session.id]
    assert client.v1.checkout.sessions.list({"created": {"gt": open_session.created}}).data == []


def test_session_list_pages_with_starting_after(
    client: stripe.StripeClient, price: stripe.Price
) -> None:
    created = [
        client.v1.checkout.sessions.create(
            {"mode": "payment", "line_items": [{"price": price.id, "quantity": 1}]}
        ).id
        for _ in range(5)
    ]

    first_page = client.v1.checkout.sessions.list({"limit": 2})
    everything = [s.id for s in first_page.auto_paging_iter()]

    assert first_page.has_more is True
    assert [s.id for s in first_page.data] == created[::-1][:2]
    assert everything == created[::-1]


def test_expired_session_cannot_be_expired_again(
    client: stripe.StripeClient, open_session: stripe.checkout.Session
) -> None:
    expired = client.v1.checkout.sessions.expire(open_session.id)

    assert (expired.status, expired.url) == ("expired", None)
    with pytest.raises(stripe.InvalidRequestError, match="can be expired"):
        client.v1.checkout.sessions.expire(open_session.id)


def test_unknown_object_is_a_404_invalid_request_error(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.checkout.sessions.retrieve("cs_test_does_not_exist")

    assert missing.value.http_status == 404
    assert missing.value.code == "resource_missing"
    assert isinstance(missing.value.json_body, dict)
    assert missing.value.json_body["error"]["type"] == "invalid_request_error"


def test_bad_parameters_are_400_errors_naming_the_param(
    client: stripe.StripeClient, price: stripe.Price
) -> None:
    unknown_params: Any = {
        "mode": "payment",
        "line_items": [{"price": price.id, "quantity": 1}],
        "colour": "red",
    }
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.checkout.sessions.create(unknown_params)
    with pytest.raises(stripe.InvalidRequestError) as missing_quantity:
        client.v1.checkout.sessions.create({"mode": "payment", "line_items": [{"price": price.id}]})
    with pytest.raises(stripe.InvalidRequestError) as no_such_price:
        client.v1.checkout.sessions.create(
            {"mode": "payment", "line_items": [{"price": "price_nope", "quantity": 1}]}
        )

    assert (unknown.value.http_status, unknown.value.param) == (400, "colour")
    assert missing_quantity.value.param == "line_items[0][quantity]"
    assert no_such_price.value.param == "line_items[0][price]"


def test_requests_without_a_test_secret_key_get_401(stripe_double: Double) -> None:
    live_client = stripe.StripeClient("sk_live_not_allowed_here",
                                      base_addresses={"api": stripe_double.url})  # fmt: skip

    with pytest.raises(stripe.AuthenticationError):
        live_client.v1.products.list()
    anonymous = requests.get(f"{stripe_double.url}/v1/products", timeout=10)

    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["type"] == "invalid_request_error"


def test_unrecognized_url_is_a_stripe_shaped_404(stripe_double: Double) -> None:
    answer = requests.get(
        f"{stripe_double.url}/v1/no_such_things",
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=10,
    )

    assert answer.status_code == 404
    assert "Unrecognized request URL" in answer.json()["error"]["message"]


def test_global_api_base_configuration_reaches_the_double(
    stripe_double: Double, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stripe, "api_key", API_KEY)
    monkeypatch.setattr(stripe, "api_base", stripe_double.url)

    product = stripe.Product.create(name="Via module globals")

    assert stripe.Product.retrieve(product.id).name == "Via module globals"


def test_refund_by_payment_intent_defaults_to_the_full_amount(
    client: stripe.StripeClient, open_session: stripe.checkout.Session, stripe_double: Double
) -> None:
    stripe_double.control(f"sessions/{open_session.id}/pay", outcome="paid").raise_for_status()
    paid = client.v1.checkout.sessions.retrieve(open_session.id)

    refund = client.v1.refunds.create({"payment_intent": str(paid.payment_intent)})

    assert refund.id.startswith("re_")
    assert (refund.amount, refund.status) == (4900, "succeeded")
    assert client.v1.refunds.retrieve(refund.id).payment_intent == paid.payment_intent
    with pytest.raises(stripe.InvalidRequestError) as again:
        client.v1.refunds.create({"payment_intent": str(paid.payment_intent)})
    assert again.value.code == "charge_already_refunded"


def test_partial_refunds_cannot_exceed_the_charge(
    client: stripe.StripeClient, open_session: stripe.checkout.Session, stripe_double: Double
) -> None:
    stripe_double.control(f"sessions/{open_session.id}/pay", outcome="paid").raise_for_status()
    intent = client.v1.payment_intents.retrieve(
        str(client.v1.checkout.sessions.retrieve(open_session.id).payment_intent)
    )

    client.v1.refunds.create({"charge": str(intent.latest_charge), "amount": 900})
    with pytest.raises(stripe.InvalidRequestError) as too_much:
        client.v1.refunds.create({"charge": str(intent.latest_charge), "amount": 4001})

    charge = client.v1.charges.retrieve(str(intent.latest_charge))
    assert too_much.value.code == "amount_too_large"
    assert (charge.amount_refunded, charge.refunded) == (900, False)


def test_paid_session_carries_payment_details_like_stripe(
    client: stripe.StripeClient, open_session: stripe.checkout.Session, stripe_double: Double
) -> None:
    stripe_double.control(
        f"sessions/{open_session.id}/pay", outcome="paid", email="ada@example.com", name="Ada"
    ).raise_for_status()

    session = client.v1.checkout.sessions.retrieve(open_session.id, {"expand": ["payment_intent"]})

    assert (session.status, session.payment_status) == ("complete", "paid")
    assert session.customer_details is not None
    assert (session.customer_details.email, session.customer_details.name) == (
        "ada@example.com", "Ada"
    )  # fmt: skip
    intent = session.payment_intent
    assert isinstance(intent, stripe.PaymentIntent)
    assert intent.id.startswith("pi_")
    assert intent.status == "succeeded"
    assert intent.metadata.to_dict() == {"product": "genx", "ref": "friend"}
    assert session.url is None
    found = client.v1.checkout.sessions.list({"payment_intent": intent.id})
    assert [s.id for s in found.data] == [session.id]


def test_session_created_long_ago_is_filtered_out_by_created_gte(
    client: stripe.StripeClient, open_session: stripe.checkout.Session
) -> None:
    tomorrow = int(time.time()) + 86400

    assert client.v1.checkout.sessions.list({"created": {"gte": tomorrow}}).data == []
    assert len(client.v1.checkout.sessions.list({"created": {"lte": tomorrow}}).data) == 1


def test_refunds_disputes_charges_and_fraud_warnings_are_listed_like_stripe(
    client: stripe.StripeClient, open_session: stripe.checkout.Session, stripe_double: Double
) -> None:
    """What reconciliation and the fraud-warning handler ask for, through the library."""
    before = int(time.time()) - 1
    stripe_double.control(f"sessions/{open_session.id}/pay", outcome="paid").raise_for_status()
    stripe_double.control(f"sessions/{open_session.id}/refund", amount="900").raise_for_status()
    stripe_double.control(f"sessions/{open_session.id}/dispute").raise_for_status()
    stripe_double.control(f"sessions/{open_session.id}/early_fraud_warning").raise_for_status()
    intent_id = client.v1.checkout.sessions.retrieve(open_session.id).payment_intent
    assert isinstance(intent_id, str)

    intent = client.v1.payment_intents.retrieve(intent_id, {"expand": ["latest_charge"]})
    refunds = client.v1.refunds.list({"created": {"gte": before}, "expand": ["data.charge"]})
    disputes = client.v1.disputes.list({"created": {"gte": before}, "payment_intent": intent_id})
    charges = client.v1.charges.list({"payment_intent": intent_id})
    warnings = client.v1.radar.early_fraud_warnings.list({"payment_intent": intent_id})
    (warned,) = stripe_double.events("radar.early_fraud_warning.created")

    assert isinstance(intent.latest_charge, stripe.Charge)
    assert (intent.latest_charge.amount_refunded, intent.latest_charge.refunded) == (900, False)
    (refund,) = refunds.data
    assert isinstance(refund.charge, stripe.Charge)
    assert refund.charge.id == intent.latest_charge.id
    (dispute,) = disputes.data
    assert (dispute.payment_intent, dispute.status) == (intent_id, "needs_response")
    assert [c.id for c in charges.data] == [intent.latest_charge.id]
    (warning,) = warnings.data
    assert (warning.charge, warning.payment_intent) == (intent.latest_charge.id, intent_id)
    assert warning.actionable is False  # the charge is already disputed
    assert warned["event"]["data"]["object"]["id"] == warning.id
    assert client.v1.radar.early_fraud_warnings.retrieve(warning.id).id == warning.id
    assert client.v1.disputes.list({"created": {"gt": int(time.time()) + 60}}).data == []


def test_an_unknown_list_filter_is_refused_like_stripe(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.disputes.list({"status": "lost"})  # type: ignore[typeddict-unknown-key]
    assert refused.value.http_status == 400


def test_a_coupon_discounts_the_session_and_a_free_session_needs_no_payment(
    client: stripe.StripeClient, price: stripe.Price, stripe_double: Double
) -> None:
    client.v1.coupons.create({"id": "FREE", "percent_off": 100})
    client.v1.coupons.create({"id": "FIVE", "amount_off": 500, "currency": "eur"})

    def session_with(coupon: str) -> stripe.checkout.Session:
        return client.v1.checkout.sessions.create(
            {
                "mode": "payment",
                "line_items": [{"price": price.id, "quantity": 1}],
                "success_url": "http://shop.test/ok",
                "discounts": [{"coupon": coupon}],
            }
        )

    free, five = session_with("FREE"), session_with("FIVE")
    stripe_double.control(f"sessions/{free.id}/pay", outcome="paid").raise_for_status()
    paid_free = client.v1.checkout.sessions.retrieve(free.id, {"expand": ["line_items"]})

    assert (five.amount_subtotal, five.amount_total) == (4900, 4400)
    assert five.total_details is not None
    assert five.total_details.amount_discount == 500
    assert (paid_free.amount_total, paid_free.payment_status) == (0, "no_payment_required")
    assert paid_free.payment_intent is None
    assert paid_free.line_items is not None
    assert paid_free.line_items.data[0].amount_discount == 4900
    assert client.v1.coupons.retrieve("FREE").times_redeemed == 1
    (completed,) = stripe_double.events("checkout.session.completed")
    assert completed["event"]["data"]["object"]["payment_status"] == "no_payment_required"
    with pytest.raises(stripe.InvalidRequestError):
        session_with("NO_SUCH_COUPON")
