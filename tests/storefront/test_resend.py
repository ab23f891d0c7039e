from dataclasses import replace

import pytest

from commerce.domain.models import EmailJobKind, EmailJobState
from commerce.domain.orders import OrderState
from commerce.domain.tokens import hash_token
from commerce.errors import RateLimited
from commerce.storefront.resend import ResendRequest, resend_links_service
from tests.support.factories import Purchase, key_service, purchase, session_id

NETWORK = "203.0.113.7/32"


def store(container, bought: Purchase) -> None:
    container.customers.put(bought.customer)
    container.orders.put(bought.order)
    if bought.license is not None:
        container.licenses.put(bought.license)
    for grant in bought.grants:
        container.download_tokens.put(grant)


def ask(container, email: str, locale: str | None = None, network: str = NETWORK):
    service = resend_links_service(container)
    return service.request_links(ResendRequest(email=email, locale=locale), network=network)


def resend_jobs(container):
    return container.email_jobs.in_state(EmailJobState.PENDING)


def test_a_buyer_gets_one_resend_job_with_fresh_grants_and_it_is_enqueued(
    container, email_queue, clock
):
    bought = purchase(key_service(), OrderState.FULFILLED, email="ada@example.com")
    store(container, bought)

    answer = ask(container, "  Ada@Example.com ", locale="de")

    assert answer.status == 202
    (job,) = resend_jobs(container)
    assert job.kind is EmailJobKind.RESEND
    assert job.customer_id == bought.customer.id
    assert job.order_ids == (bought.order.id,)
    assert job.license_ids == (bought.license.id,)
    assert job.locale == "de"
    assert email_queue.job_ids == [job.id]
    (token_id,) = job.download_token_ids
    assert token_id not in {grant.token_id for grant in bought.grants}
    grant = container.download_tokens.by_token_id(token_id)
    assert grant is not None
    assert grant.order_id == bought.order.id
    assert grant.expires_at > clock.now()
    # The stored grant is keyed by the hash of the token the worker will derive.
    token = key_service().token_for(token_id, grant.secret_id)
    assert grant.token_hash == hash_token(token)
    actions = [entry.action for entry in container.audit_log.recent()]
    assert "resend.queued" in actions


def test_a_stranger_gets_the_same_answer_and_nothing_is_queued(container, email_queue):
    bought = purchase(key_service(), OrderState.FULFILLED, email="ada@example.com")
    store(container, bought)

    for_buyer = ask(container, "ada@example.com")
    for_stranger = ask(container, "mallory@example.com")

    assert for_stranger == for_buyer
    assert for_stranger.as_dict("en", "GENX") == for_buyer.as_dict("en", "GENX")
    assert len(email_queue.job_ids) == 1
    assert len(resend_jobs(container)) == 1


@pytest.mark.parametrize(
    "state",
    [OrderState.PENDING, OrderState.PAID, OrderState.REFUNDED, OrderState.DISPUTED],
)
def test_orders_that_are_not_entitled_get_no_links(container, email_queue, state):
    store(container, purchase(key_service(), state, email="ada@example.com"))

    assert ask(container, "ada@example.com").status == 202

    assert email_queue.job_ids == []
    assert resend_jobs(container) == []


def test_every_entitled_order_of_the_buyer_is_in_the_one_email(container, email_queue):
    keys = key_service()
    first = purchase(keys, OrderState.FULFILLED, email="ada@example.com", order_id=session_id(1))
    second = purchase(keys, OrderState.FULFILLED, email="ada@example.com", order_id=session_id(2))
    refunded = purchase(keys, OrderState.REFUNDED, email="ada@example.com", order_id=session_id(3))
    for bought in (first, second, refunded):
        store(container, bought)

    ask(container, "ada@example.com")

    (job,) = resend_jobs(container)
    assert sorted(job.order_ids) == sorted([first.order.id, second.order.id])
    assert len(job.download_token_ids) == 2


def test_over_the_address_limit_the_answer_is_the_same_but_nothing_is_sent(
    container, email_queue, settings
):
    store(container, purchase(key_service(), OrderState.FULFILLED, email="ada@example.com"))
    limit = settings.resend_rate_limit_per_address

    answers = [
        ask(container, "ada@example.com", network=f"198.51.100.{n}/32") for n in range(limit + 2)
    ]

    assert {answer.status for answer in answers} == {202}
    assert len(email_queue.job_ids) == limit
    actions = [entry.action for entry in container.audit_log.recent()]
    assert actions.count("resend.suppressed") == 2


def test_over_the_network_limit_the_client_is_told_to_wait(container, settings):
    for n in range(settings.resend_rate_limit_per_network):
        ask(container, f"someone{n}@example.com")

    with pytest.raises(RateLimited) as refused:
        ask(container, "one-more@example.com")
    assert int(refused.value.headers["Retry-After"]) >= 1


def test_a_queue_failure_keeps_the_job_pending_for_the_sweeper(container, email_queue):
    store(container, purchase(key_service(), OrderState.FULFILLED, email="ada@example.com"))
    email_queue.fail = True

    assert ask(container, "ada@example.com").status == 202

    (job,) = resend_jobs(container)
    assert job.state is EmailJobState.PENDING


def test_a_license_revoked_by_support_gets_no_links_even_if_the_order_looks_fulfilled(
    container, email_queue
):
    from commerce.domain.models import LicenseStatus

    bought = purchase(key_service(), OrderState.FULFILLED, email="ada@example.com")
    store(container, bought)
    container.licenses.put(bought.license.model_copy(update={"status": LicenseStatus.REVOKED}))

    ask(container, "ada@example.com")

    assert email_queue.job_ids == []


def test_without_a_requested_locale_the_customer_s_own_is_used(container):
    bought = purchase(key_service(), OrderState.FULFILLED, email="ada@example.com")
    store(container, replace(bought, customer=bought.customer.model_copy(update={"locale": "de"})))

    ask(container, "ada@example.com", locale="fr")

    (job,) = resend_jobs(container)
    assert job.locale == "de"


@pytest.mark.parametrize("email", ["not-an-address", "a@b", "@example.com", "x" * 250 + "@e.com"])
def test_a_malformed_address_is_refused(email):
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        ResendRequest(email=email)
