"""Stripe that accepts connections and never answers, reached through the official
`stripe` library: every call ends within the request budget (REQUEST_BUDGET_SECONDS,
1 s here to keep the tests short) with a 503 `dependency_timeout`, or, outside a
request, after its attempt ceiling and a bounded number of retries with a 502
`payment_provider_error` (purchase/gateway.py, commerce/deadlines.py). Without these
bounds each attempt waited 20 s and was retried twice."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import functions_framework
import pytest

from commerce.bootstrap import Container, use_container
from commerce.deadlines import DependencyTimeout, request_budget
from commerce.purchase import gateway as gateway_module
from commerce.purchase.gateway import StripeGateway
from commerce.purchase.schemas import PaymentProviderError
from commerce.secrets import EnvSecrets
from tests.purchase import stripe_events as se
from tests.purchase.conftest import STOREFRONT, WEBHOOK_SECRET, count_documents, make_settings
from tests.support.black_hole import BlackHole, black_hole

SOURCE = str(Path(__file__).resolve().parents[2] / "functions" / "main.py")


@pytest.fixture
def hung_stripe() -> Iterator[BlackHole]:
    with black_hole() as hole:
        yield hole


@pytest.fixture
def install(
    firestore_db: Any, secret_values: dict[str, str], clock: Any, email_queue: Any
) -> Iterator[Callable[..., Container]]:
    def build(**overrides: Any) -> Container:
        built = Container(
            make_settings(**overrides), clock=clock, secrets=EnvSecrets(secret_values)
        )
        built.__dict__["db"] = firestore_db
        built.__dict__["email_queue"] = email_queue
        use_container(built)
        return built

    yield build
    use_container(None)


def gateway_at(url: str, secret_values: dict[str, str]) -> StripeGateway:
    return StripeGateway(EnvSecrets(secret_values), url)


def deliver(event: dict[str, Any]) -> Any:
    """`event`, signed, delivered to the webhook function; its answer."""
    payload, header = se.signed(event, WEBHOOK_SECRET)
    return (
        functions_framework.create_app("stripe_webhook", SOURCE)
        .test_client()
        .post(
            "/",
            data=payload,
            headers={"Stripe-Signature": header, "Content-Type": "application/json"},
        )
    )


def test_checkout_answers_503_when_stripe_never_answers(install, hung_stripe):
    install(stripe_api_base=hung_stripe.url, request_budget_seconds=1.0)

    answer = (
        functions_framework.create_app("checkout", SOURCE)
        .test_client()
        .post("/", json={}, headers={"Origin": STOREFRONT})
    )

    assert answer.status_code == 503
    assert answer.get_json()["error"] == "dependency_timeout"
    # No retry: under STRIPE_RETRY_MIN_SECONDS of the budget was left after the first.
    assert hung_stripe.connections == 1


def test_a_refund_stripe_must_be_asked_about_answers_503_and_is_not_recorded(install, hung_stripe):
    """The webhook asks Stripe which session a charge of an unknown PaymentIntent
    belongs to; with Stripe hung it answers 503 (Stripe redelivers) and records
    nothing, so the redelivery is handled in full."""
    container = install(stripe_api_base=hung_stripe.url, request_budget_seconds=1.0)
    event = se.event("charge.refunded", se.charge(se.new_id("pi_"), amount_refunded=4900))

    answer = deliver(event)

    assert answer.status_code == 503
    assert answer.get_json()["error"] == "dependency_timeout"
    assert hung_stripe.connections >= 1  # it was Stripe that was waited for
    assert container.webhook_events.get(event["id"]) is None


def test_a_paid_session_stripe_never_answers_for_answers_503_and_writes_nothing(
    install, hung_stripe, firestore_db
):
    """The session is verified inside its unit of work, after the locked read: with
    Stripe hung, the lookup ends before the budget does (leaving the commit its share),
    the unit rolls back, and Stripe gets a 503 and delivers again."""
    install(stripe_api_base=hung_stripe.url, request_budget_seconds=1.0)
    event = se.event("checkout.session.completed", se.checkout_session())

    answer = deliver(event)

    assert answer.status_code == 503
    assert answer.get_json()["error"] == "dependency_timeout"
    assert hung_stripe.connections == 1  # asked once, no retry with so little left
    assert count_documents(firestore_db) == {}


def test_a_spent_budget_calls_stripe_no_more(hung_stripe, secret_values):
    stripe_gateway = gateway_at(hung_stripe.url, secret_values)

    with request_budget(0), pytest.raises(DependencyTimeout):
        stripe_gateway.retrieve_checkout_session("cs_test_" + "a" * 24)

    assert hung_stripe.connections == 0


def test_outside_a_request_each_attempt_ends_at_its_ceiling_and_retries_are_bounded(
    hung_stripe, secret_values, monkeypatch
):
    monkeypatch.setattr(gateway_module, "STRIPE_ATTEMPT_SECONDS", 0.2)
    stripe_gateway = gateway_at(hung_stripe.url, secret_values)

    with pytest.raises(PaymentProviderError) as refused:
        stripe_gateway.retrieve_checkout_session("cs_test_" + "a" * 24)

    assert refused.value.status == 502
    assert "could not be reached" in str(refused.value.detail)
    assert hung_stripe.connections == 1 + gateway_module.STRIPE_NETWORK_RETRIES
