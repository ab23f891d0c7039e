"""The storefront's functions driven in-process through functions-framework."""

from pathlib import Path

import pytest
from functions_framework import create_app

from commerce.bootstrap import Container, use_container
from commerce.domain.orders import OrderState
from tests.storefront.conftest import STOREFRONT
from tests.support.factories import key_service, purchase, session_id

MAIN = str(Path(__file__).resolve().parents[2] / "functions" / "main.py")


@pytest.fixture
def order_status_client(container):
    return create_app("order_status", MAIN).test_client()


@pytest.fixture
def resend_client(container):
    return create_app("resend_links", MAIN).test_client()


def store(container, bought):
    container.customers.put(bought.customer)
    container.orders.put(bought.order)
    if bought.license is not None:
        container.licenses.put(bought.license)


# -- order_status -----------------------------------------------------------------------


def test_order_status_answers_state_and_masked_address_only(container, order_status_client):
    bought = purchase(key_service(), OrderState.FULFILLED, email="jane@example.com")
    store(container, bought)

    response = order_status_client.get(
        f"/?session_id={bought.order.id}", headers={"Origin": STOREFRONT}
    )

    assert response.status_code == 200
    assert response.get_json() == {"state": "fulfilled", "email_masked": "j***@example.com"}
    assert response.headers["Access-Control-Allow-Origin"] == STOREFRONT
    assert response.headers["Cache-Control"] == "no-store"
    assert bought.key not in response.get_data(as_text=True)


def test_order_status_refuses_a_malformed_session_id_with_a_stable_code(order_status_client):
    response = order_status_client.get("/?session_id=../../etc/passwd")
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_session_id"


def test_order_status_gives_other_origins_no_cors_grant(container, order_status_client):
    response = order_status_client.get(
        f"/?session_id={session_id(3)}", headers={"Origin": "https://evil.example"}
    )
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers


def test_order_status_is_read_only(order_status_client):
    response = order_status_client.post(f"/?session_id={session_id(3)}")
    assert response.status_code == 405


def test_order_status_limits_polling_per_network(container, settings, order_status_client):
    limited = Container(
        settings.model_copy(update={"order_status_rate_limit_per_network": 2}),
        clock=container.clock,
        secrets=container.secrets,
    )
    limited.db = container.db
    use_container(limited)
    codes = [order_status_client.get(f"/?session_id={session_id(3)}").status_code for _ in range(3)]
    assert codes == [200, 200, 429]


# -- resend_links -----------------------------------------------------------------------


def test_resend_gives_a_buyer_and_a_stranger_the_same_json_answer(
    container, email_queue, resend_client
):
    store(container, purchase(key_service(), OrderState.FULFILLED, email="ada@example.com"))

    buyer = resend_client.post(
        "/", json={"email": "ada@example.com", "locale": "en"}, headers={"Origin": STOREFRONT}
    )
    stranger = resend_client.post(
        "/", json={"email": "eve@example.com", "locale": "en"}, headers={"Origin": STOREFRONT}
    )

    assert buyer.status_code == stranger.status_code == 202
    assert buyer.get_data() == stranger.get_data()
    assert buyer.get_json()["status"] == "accepted"
    assert buyer.headers["Access-Control-Allow-Origin"] == STOREFRONT
    assert len(email_queue.resend_tasks) == 2  # both queued: the worker tells them apart
    assert email_queue.job_ids == []


def test_resend_answers_a_preflight_from_the_storefront(resend_client):
    response = resend_client.options(
        "/",
        headers={
            "Origin": STOREFRONT,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Content-Type",
        },
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == STOREFRONT


def test_a_plain_form_post_gets_a_small_page_in_its_language_with_a_link_back(
    container, resend_client
):
    response = resend_client.post("/", data={"email": "eve@example.com", "locale": "de"})

    assert response.status_code == 202
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert '<html lang="de">' in page
    assert "Wenn mit dieser Adresse GENX gekauft wurde" in page
    assert f'href="{STOREFRONT}/de/resend.html"' in page


def test_a_form_post_with_a_bad_address_gets_the_error_as_a_page(container, resend_client):
    response = resend_client.post("/", data={"email": "nope", "locale": "en"})
    assert response.status_code == 400
    assert "Please enter a valid e-mail address." in response.get_data(as_text=True)


def test_a_json_post_with_a_bad_address_gets_a_stable_error_code(container, resend_client):
    response = resend_client.post("/", json={"email": "nope"})
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


def test_unknown_fields_are_refused(container, resend_client):
    response = resend_client.post("/", json={"email": "a@example.com", "admin": True})
    assert response.status_code == 400


def test_a_network_over_its_limit_gets_429_with_retry_after(container, settings, resend_client):
    for n in range(settings.resend_rate_limit_per_network):
        assert resend_client.post("/", json={"email": f"p{n}@example.com"}).status_code == 202
    refused = resend_client.post("/", json={"email": "last@example.com"})
    assert refused.status_code == 429
    assert refused.get_json()["error"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    as_form = resend_client.post("/", data={"email": "last@example.com", "locale": "en"})
    assert as_form.status_code == 429
    assert "Too many requests" in as_form.get_data(as_text=True)
