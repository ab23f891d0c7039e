"""Re-send: the request path queues one task for every well-formed address (nothing
looked up); the worker step (`prepare`, `handle_task`) finds the buyer's entitled
orders and makes one job with fresh grants. On the Firestore emulator."""

from dataclasses import replace

import pytest

from commerce.adapters.tasks_queue import resend_task_id
from commerce.domain.models import EmailJobKind, EmailJobState
from commerce.domain.orders import OrderState
from commerce.domain.tokens import hash_token
from commerce.errors import RateLimited, TransientFailure
from commerce.storefront.resend import ResendRequest
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
    service = container.resend_service
    return service.request_links(ResendRequest(email=email, locale=locale), network=network)


def work_off(container, email_queue) -> list[str | None]:
    """Run the worker step of every queued re-send task (as send_email does)."""
    service = container.resend_service
    return [service.prepare(task) for task in email_queue.resend_tasks]


def resend_jobs(container):
    return container.email_jobs.in_state(EmailJobState.PENDING)


def test_a_buyer_gets_one_resend_job_with_fresh_grants_made_by_the_worker(
    container, email_queue, clock
):
    bought = purchase(key_service(), OrderState.FULFILLED, email="ada@example.com")
    store(container, bought)

    answer = ask(container, "  Ada@Example.com ", locale="de")

    assert answer.status == 202
    (task,) = email_queue.resend_tasks
    assert task.customer_id == bought.customer.id
    assert "ada" not in task.model_dump_json().lower()  # the address never travels
    assert resend_jobs(container) == []  # nothing is looked up or written on the request
    (job_id,) = work_off(container, email_queue)
    (job,) = resend_jobs(container)
    assert job.id == job_id
    assert job.kind is EmailJobKind.RESEND
    assert job.customer_id == bought.customer.id
    assert job.order_ids == (bought.order.id,)
    assert job.license_ids == (bought.license.id,)
    assert job.locale == "de"
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


def test_a_stranger_gets_the_same_answer_and_the_same_queued_task_but_no_job(
    container, email_queue
):
    bought = purchase(key_service(), OrderState.FULFILLED, email="ada@example.com")
    store(container, bought)

    for_buyer = ask(container, "ada@example.com")
    for_stranger = ask(container, "mallory@example.com")

    assert for_stranger == for_buyer
    assert for_stranger.as_dict("en", "GENX") == for_buyer.as_dict("en", "GENX")
    assert len(email_queue.resend_tasks) == 2
    buyer_task, stranger_task = email_queue.resend_tasks
    assert buyer_task.window == stranger_task.window
    assert buyer_task.customer_id != stranger_task.customer_id
    assert work_off(container, email_queue)[1] is None
    assert len(resend_jobs(container)) == 1
    assert "resend.ignored" in [e.action for e in container.audit_log.recent()]


def test_repeats_within_the_window_are_one_task_and_one_job(container, email_queue, clock):
    store(container, purchase(key_service(), OrderState.FULFILLED, email="ada@example.com"))

    ask(container, "ada@example.com")
    ask(container, "ADA@example.com", locale="de")
    first, second = email_queue.resend_tasks
    job_ids = work_off(container, email_queue)
    # A retried task (Cloud Tasks delivers at least once) finds the job: no second one.
    again = container.resend_service.prepare(first)

    assert resend_task_id(first) == resend_task_id(second)
    assert job_ids[0] == job_ids[1] == again
    assert len(resend_jobs(container)) == 1


def test_a_request_in_the_next_window_is_a_new_task(container, email_queue, clock, settings):
    from datetime import timedelta

    ask(container, "ada@example.com")
    clock.advance(timedelta(seconds=settings.resend_collapse_window_seconds))
    ask(container, "ada@example.com")

    first, second = email_queue.resend_tasks
    assert resend_task_id(first) != resend_task_id(second)


def test_the_worker_delivers_the_job_it_made(container, email_queue):
    store(container, purchase(key_service(), OrderState.FULFILLED, email="ada@example.com"))
    delivered: list[tuple[str, int]] = []
    service = container.resend_service
    service.deliver = lambda job_id, task_retry_count: delivered.append(  # type: ignore[assignment]
        (job_id, task_retry_count)
    )

    ask(container, "ada@example.com")
    (task,) = email_queue.resend_tasks
    service.handle_task(task, task_retry_count=2)
    nothing = service.handle_task(task.model_copy(update={"customer_id": "cus_" + "0" * 32}))

    (job,) = resend_jobs(container)
    assert delivered == [(job.id, 2)]
    assert nothing is None


@pytest.mark.parametrize(
    "state",
    [OrderState.PENDING, OrderState.PAID, OrderState.REFUNDED, OrderState.DISPUTED],
)
def test_orders_that_are_not_entitled_get_no_links(container, email_queue, state):
    store(container, purchase(key_service(), state, email="ada@example.com"))

    assert ask(container, "ada@example.com").status == 202

    assert work_off(container, email_queue) == [None]
    assert resend_jobs(container) == []


def test_every_entitled_order_of_the_buyer_is_in_the_one_email(container, email_queue):
    keys = key_service()
    first = purchase(keys, OrderState.FULFILLED, email="ada@example.com", order_id=session_id(1))
    second = purchase(keys, OrderState.FULFILLED, email="ada@example.com", order_id=session_id(2))
    refunded = purchase(keys, OrderState.REFUNDED, email="ada@example.com", order_id=session_id(3))
    for bought in (first, second, refunded):
        store(container, bought)

    ask(container, "ada@example.com")
    work_off(container, email_queue)

    (job,) = resend_jobs(container)
    assert sorted(job.order_ids) == sorted([first.order.id, second.order.id])
    assert len(job.download_token_ids) == 2


def test_over_the_address_limit_the_answer_is_the_same_but_nothing_is_queued(
    container, email_queue, settings
):
    store(container, purchase(key_service(), OrderState.FULFILLED, email="ada@example.com"))
    limit = settings.resend_rate_limit_per_address

    answers = [
        ask(container, "ada@example.com", network=f"198.51.100.{n}/32") for n in range(limit + 2)
    ]

    assert {answer.status for answer in answers} == {202}
    assert len(email_queue.resend_tasks) == limit
    actions = [entry.action for entry in container.audit_log.recent()]
    assert actions.count("resend.suppressed") == 2


def test_over_the_network_limit_the_client_is_told_to_wait(container, settings):
    for n in range(settings.resend_rate_limit_per_network):
        ask(container, f"someone{n}@example.com")

    with pytest.raises(RateLimited) as refused:
        ask(container, "one-more@example.com")
    assert int(refused.value.headers["Retry-After"]) >= 1


def test_an_unreachable_queue_is_a_503_for_everybody_alike(container, email_queue):
    store(container, purchase(key_service(), OrderState.FULFILLED, email="ada@example.com"))
    email_queue.fail = True

    with pytest.raises(TransientFailure) as for_buyer:
        ask(container, "ada@example.com")
    with pytest.raises(TransientFailure) as for_stranger:
        ask(container, "mallory@example.com")

    assert for_buyer.value.status == for_stranger.value.status == 503
    assert for_buyer.value.detail == for_stranger.value.detail
    assert resend_jobs(container) == []


def test_a_license_revoked_by_support_gets_no_links_even_if_the_order_looks_fulfilled(
    container, email_queue
):
    from commerce.domain.models import LicenseStatus

    bought = purchase(key_service(), OrderState.FULFILLED, email="ada@example.com")
    store(container, bought)
    container.licenses.put(bought.license.model_copy(update={"status": LicenseStatus.REVOKED}))

    ask(container, "ada@example.com")

    assert work_off(container, email_queue) == [None]


def test_without_a_requested_locale_the_customer_s_own_is_used(container, email_queue):
    bought = purchase(key_service(), OrderState.FULFILLED, email="ada@example.com")
    store(container, replace(bought, customer=bought.customer.model_copy(update={"locale": "de"})))

    ask(container, "ada@example.com", locale="fr")
    work_off(container, email_queue)

    (job,) = resend_jobs(container)
    assert job.locale == "de"


@pytest.mark.parametrize("email", ["not-an-address", "a@b", "@example.com", "x" * 250 + "@e.com"])
def test_a_malformed_address_is_refused(email):
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        ResendRequest(email=email)
