"""The hosted pay page: plain HTML forms a person (or a browser test) submits."""

from __future__ import annotations

import requests
import stripe

from .conftest import Double


def pay_url(stripe_double: Double, session: stripe.checkout.Session) -> str:
    return f"{stripe_double.url}/pay/{session.id}"


def test_pay_page_shows_product_amount_and_labelled_fields(
    stripe_double: Double, open_session: stripe.checkout.Session
) -> None:
    page = requests.get(str(open_session.url), timeout=10)

    assert page.status_code == 200
    assert "GENX plugin" in page.text
    assert "49.00 EUR" in page.text
    assert '<label for="email">' in page.text
    assert 'id="email" name="email" type="email"' in page.text
    for label in ("Pay", "Pay with failing card", "Pay with delayed (async) method",
                  "Pay with delayed method that fails", "Cancel"):  # fmt: skip
        assert f">{label}</button>" in page.text


def test_pay_redirects_to_the_success_url_with_the_session_id(
    stripe_double: Double, open_session: stripe.checkout.Session, client: stripe.StripeClient
) -> None:
    answer = requests.post(
        pay_url(stripe_double, open_session),
        data={"email": "ada@example.com", "name": "Ada", "outcome": "paid"},
        allow_redirects=False,
        timeout=10,
    )

    assert answer.status_code == 303
    assert answer.headers["Location"] == f"http://shop.test/thanks?session={open_session.id}"
    session = client.v1.checkout.sessions.retrieve(open_session.id)
    assert (session.status, session.payment_status) == ("complete", "paid")
    assert (
        requests.get(pay_url(stripe_double, open_session), timeout=10).text.count(
            "This payment is complete"
        )
        == 1
    )


def test_failing_card_shows_a_decline_and_keeps_the_session_open(
    stripe_double: Double, open_session: stripe.checkout.Session, client: stripe.StripeClient
) -> None:
    answer = requests.post(
        pay_url(stripe_double, open_session),
        data={"email": "ada@example.com", "outcome": "declined"},
        allow_redirects=False,
        timeout=10,
    )

    assert answer.status_code == 402
    assert 'role="alert"' in answer.text
    assert "declined" in answer.text
    assert client.v1.checkout.sessions.retrieve(open_session.id).status == "open"


def test_email_is_required_when_the_session_has_none(
    stripe_double: Double, open_session: stripe.checkout.Session
) -> None:
    answer = requests.post(
        pay_url(stripe_double, open_session), data={"outcome": "paid"}, timeout=10
    )

    assert answer.status_code == 400
    assert "Enter a valid e-mail address." in answer.text


def test_email_from_the_session_is_prefilled_and_used(
    stripe_double: Double, client: stripe.StripeClient, open_session: stripe.checkout.Session
) -> None:
    price = client.v1.checkout.sessions.line_items.list(open_session.id).data[0].price
    assert price is not None
    session = client.v1.checkout.sessions.create(
        {"mode": "payment", "customer_email": "known@example.com",
         "line_items": [{"price": price.id, "quantity": 2}]}
    )  # fmt: skip

    page = requests.get(str(session.url), timeout=10)
    requests.post(str(session.url), data={"outcome": "paid"}, timeout=10).raise_for_status()

    assert 'value="known@example.com"' in page.text
    assert "98.00 EUR" in page.text
    paid = client.v1.checkout.sessions.retrieve(session.id)
    assert paid.customer_details is not None
    assert paid.customer_details.email == "known@example.com"


def test_cancel_redirects_to_the_cancel_url(
    stripe_double: Double, open_session: stripe.checkout.Session
) -> None:
    answer = requests.post(
        pay_url(stripe_double, open_session), data={"outcome": "cancel"},
        allow_redirects=False, timeout=10,
    )  # fmt: skip

    assert answer.status_code == 303
    assert answer.headers["Location"] == "http://shop.test/cancelled"


def test_operator_page_lists_sessions_with_refund_and_dispute_buttons(
    stripe_double: Double, open_session: stripe.checkout.Session
) -> None:
    stripe_double.control(f"sessions/{open_session.id}/pay", outcome="paid").raise_for_status()

    page = requests.get(f"{stripe_double.url}/_double/", timeout=10)
    refunded = requests.post(
        f"{stripe_double.url}/_double/sessions/{open_session.id}/refund",
        data={"redirect": "1", "amount": ""},
        allow_redirects=False,
        timeout=10,
    )

    assert open_session.id in page.text
    assert ">Refund</button>" in page.text
    assert ">Open dispute</button>" in page.text
    assert refunded.status_code == 303
    assert requests.get(f"{stripe_double.url}/_double/health", timeout=10).text == "ok"
