"""Contention without errors, on Google's Firestore emulator, through the functions'
test clients: many requests for one document at once get their business answers
(VALID or TOO_MANY_ACTIVATIONS, a redirect or "exhausted", one fulfillment), never a
503. Each thread sends one request, as a plugin or browser would, with no retry of
its own; all start together (a barrier)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import functions_framework
import pytest

from commerce.adapters.artifacts import ArtifactStore
from commerce.bootstrap import Container, use_container
from commerce.clock import FixedClock
from commerce.domain.tokens import hash_token
from tests.delivery.conftest import artifact_files
from tests.delivery.conftest import url_signer_file as url_signer_file  # a fixture
from tests.licensing.conftest import build_container, buy, machine, make_settings
from tests.purchase.conftest import secret_values as secret_values  # a fixture
from tests.support import factories
from tests.support.threads import run_together

pytestmark = pytest.mark.emulators
MAIN = str(Path(__file__).resolve().parents[2] / "functions" / "main.py")


@pytest.fixture
def installed(
    firestore_db: Any, storage_client: Any, tmp_path: Path, url_signer_file: str
) -> Iterator[Container]:
    settings = make_settings(
        url_signing_key_file=url_signer_file,
        download_rate_limit_per_token=1000,
        download_rate_limit_per_network=1000,
    )
    built = build_container(settings, FixedClock(factories.NOW), firestore_db)
    built.__dict__["artifacts"] = ArtifactStore(settings, storage_client)
    built.publisher.publish(artifact_files(tmp_path / "dist"), "1.0.0")
    use_container(built)
    yield built
    use_container(None)
    if "license_service" in built.__dict__:
        built.license_service.close()


def all_at_once(n: int, call: Callable[[int], Any]) -> list[Any]:
    """`call(i)` for i in 0..n-1 on n threads released together; the answers in order."""
    start = threading.Barrier(n)
    answers: list[Any] = [None] * n

    def run(i: int) -> None:
        start.wait()
        answers[i] = call(i)

    run_together(run, [(i,) for i in range(n)])
    return answers


def warmed_app(target: str, method: str, path: str) -> Any:
    """The function's app after one throw-away request: Flask/werkzeug compile routing
    on the first request, which is not thread-safe on CPython 3.11 (a SystemError in a
    thread now and then); these tests are about the store, not that."""
    app = functions_framework.create_app(target, MAIN)
    assert app.test_client().open(path, method=method).status_code < 500
    return app


def contention_logs(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the store said about contention (shown when an assertion fails)."""
    return [
        f"{r.levelname} {getattr(r, 'event', '')} attempts={getattr(r, 'attempts', '')} "
        f"seconds={getattr(r, 'seconds', '')} collections={getattr(r, 'collections', '')} "
        f"error={getattr(r, 'error', '')}"
        for r in caplog.records
        if str(getattr(r, "event", "")).startswith("storage.")
    ]


@pytest.mark.parametrize("concurrency", [8, 16])
def test_concurrent_activations_fill_the_free_slots_and_refuse_the_rest_without_a_503(
    installed: Container, concurrency: int, caplog: pytest.LogCaptureFixture
) -> None:
    bought = buy(installed, activation_limit=3)
    app = warmed_app("license_api", "POST", "/activate")

    def activate(i: int) -> tuple[int, str]:
        client = app.test_client()
        answer = client.post(
            "/activate",
            json={"key": bought.key, "fingerprint": machine(i + 1), "nonce": f"race-nonce-{i:06d}"},
            headers={"X-Forwarded-For": f"203.0.113.{i + 1}"},
        )
        body = answer.get_json(silent=True) or {}
        return answer.status_code, str(body.get("status") or body.get("error"))

    caplog.set_level(logging.INFO)
    answers = all_at_once(concurrency, activate)

    assert [status for status, _ in answers].count(503) == 0, (answers, contention_logs(caplog))
    outcomes = sorted(outcome for _, outcome in answers)
    assert outcomes.count("VALID") == 3, answers
    assert outcomes.count("TOO_MANY_ACTIVATIONS") == concurrency - 3, answers
    stored = installed.license_state.activations_of(bought.license_id)
    assert len(stored) == 3
    license_ = installed.licenses.get(bought.license_id)
    assert license_ is not None
    assert set(license_.activation_ids) == {a.id for a in stored}


@pytest.mark.parametrize("concurrency", [8, 16])
def test_concurrent_redemptions_of_one_link_stop_at_its_limit_without_a_503(
    installed: Container, concurrency: int
) -> None:
    bought = buy(installed)
    token = bought.purchase.tokens[0]
    grant = installed.download_tokens.get(hash_token(token))
    assert grant is not None
    limit = grant.max_redemptions
    assert limit < concurrency

    app = warmed_app("download", "GET", "/d/not-a-token")

    def redeem(i: int) -> tuple[int, str]:
        client = app.test_client()
        answer = client.get(
            f"/d/{token}?platform=linux-x86_64",
            headers={"X-Forwarded-For": f"203.0.113.{i + 1}", "User-Agent": "race"},
        )
        body = answer.get_json(silent=True) or {}
        return answer.status_code, str(body.get("error", ""))

    answers = all_at_once(concurrency, redeem)

    statuses = [status for status, _ in answers]
    assert statuses.count(503) == 0, answers
    assert statuses.count(302) == limit, answers
    refused = {error for status, error in answers if status != 302}
    assert len(refused) == 1, answers
    stored = installed.download_tokens.get(hash_token(token))
    assert stored is not None
    assert stored.redemptions == limit


def test_activations_racing_across_instances_never_overfill_and_every_503_names_its_cause(
    installed: Container, firestore_db: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Four instances (each with its own turns), two activations each. Across instances
    the transactions do contend. Google's Firestore resolves such lock conflicts by
    aborting the younger transaction at once (wound-wait), which the unit of work's
    jittered retries absorb; the emulator instead lets them wait for each other until
    a lock timeout (about 1.5 s), so here a request may still run out of its 8 s retry
    budget. What must hold anyway: never more activations than slots, the records agree
    with the answers, and every 503 is logged as `storage.contention` with its
    attempts, time and collections."""
    from commerce.errors import TransientFailure
    from commerce.licensing.schemas import ActivateRequest

    caplog.set_level(logging.INFO)
    bought = buy(installed, activation_limit=3)
    instances = [installed] + [
        build_container(installed.settings, FixedClock(factories.NOW), firestore_db)
        for _ in range(3)
    ]

    def activate(i: int) -> str:
        service = instances[i % len(instances)].license_service
        try:
            answer = service.activate(
                ActivateRequest(
                    key=bought.key, fingerprint=machine(i + 1), nonce=f"race-nonce-{i:06d}"
                ),
                f"203.0.113.{i}/32",
            )
        except TransientFailure:
            return "503"
        return answer.status.value

    answers = all_at_once(8, activate)
    for instance in instances[1:]:
        instance.license_service.close()

    assert set(answers) <= {"VALID", "TOO_MANY_ACTIVATIONS", "503"}, answers
    stored = installed.license_state.activations_of(bought.license_id)
    assert answers.count("VALID") == len(stored) <= 3, answers
    if len(stored) < 3:  # a slot stayed free only because its request got a 503
        assert "503" in answers
    gave_up = [r for r in caplog.records if getattr(r, "event", None) == "storage.contention"]
    assert len(gave_up) == answers.count("503"), (answers, contention_logs(caplog))
    for record in gave_up:
        assert record.levelno == logging.ERROR
        assert record.collections == ["activations", "licenses"]  # type: ignore[attr-defined]
        assert record.attempts >= 2  # type: ignore[attr-defined]


def test_contention_that_outlasts_the_retries_is_a_logged_503(
    installed: Container, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every transaction of this unit aborts (as under endless contention): after its
    bounded, jittered attempts the caller gets TransientFailure and the log says why."""
    from google.api_core import exceptions as gexc

    from commerce.errors import TransientFailure
    from commerce.repositories import unit_of_work as firestore_uow

    monkeypatch.setattr(firestore_uow, "MAX_ATTEMPTS", 4)
    bought = buy(installed)
    tries: list[int] = []

    def work(uow: Any) -> None:
        key = uow.licenses.key(bought.license_id)
        uow.read(key)
        tries.append(1)
        uow.reader.abandon()  # as Firestore ends a transaction it aborts
        raise gexc.Aborted("Transaction lock timeout.")

    with pytest.raises(TransientFailure):
        installed.storage.run(work)

    assert len(tries) == 4
    [record] = [r for r in caplog.records if getattr(r, "event", None) == "storage.contention"]
    assert record.levelno == logging.ERROR
    assert record.attempts == 4  # type: ignore[attr-defined]
    assert record.collections == ["licenses"]  # type: ignore[attr-defined]
    assert record.error == "Transaction lock timeout."  # type: ignore[attr-defined]


# -- reconcile racing the webhook on one session ------------------------------------------


@pytest.mark.parametrize("webhooks", [4, 8])
def test_reconcile_racing_the_webhook_fulfils_the_session_once_without_a_503(
    firestore_db: Any, secret_values: dict[str, str], webhooks: int
) -> None:
    """The webhook function receives `completed` (the first delivery, Stripe's retries
    of it, `async_payment_succeeded`) while two reconcile instances repair the same
    session: one order, one license, one e-mail job handed to the queue once, every
    answer 200 and no reconcile failure."""
    from commerce.domain.ids import fulfillment_job_id, license_id_for
    from commerce.domain.orders import OrderState
    from commerce.secrets import EnvSecrets
    from tests.purchase import stripe_events as se
    from tests.purchase.conftest import WEBHOOK_SECRET, RecordingQueue, StubSessions
    from tests.purchase.conftest import make_settings as purchase_settings

    session = se.checkout_session()
    session_id = session["id"]
    queue = RecordingQueue()
    # Stripe as reconcile and the webhook's verification see it: one paid Checkout
    # Session created recently, of the configured price.
    stripe = StubSessions()
    stripe.sessions = [session]
    stripe.created(session)

    def instance() -> Container:
        built = Container(
            purchase_settings(), clock=FixedClock(factories.NOW), secrets=EnvSecrets(secret_values)
        )
        built.__dict__["db"] = firestore_db
        built.__dict__["email_queue"] = queue
        built.__dict__["stripe_gateway"] = stripe
        return built

    webhook_instance, reconcilers = instance(), [instance(), instance()]
    use_container(webhook_instance)
    events = [se.event("checkout.session.completed", session) for _ in range(webhooks - 1)]
    events.append(se.event("checkout.session.async_payment_succeeded", session))

    app = warmed_app("stripe_webhook", "POST", "/")

    def race(i: int) -> Any:
        if i < len(reconcilers):
            return reconcilers[i].reconciler.run(1).as_dict()
        payload, header = se.signed(events[i - len(reconcilers)], WEBHOOK_SECRET)
        client = app.test_client()
        answer = client.post(
            "/",
            data=payload,
            headers={"Stripe-Signature": header, "Content-Type": "application/json"},
        )
        return answer.status_code

    try:
        answers = all_at_once(len(reconcilers) + webhooks, race)
    finally:
        use_container(None)

    reports, statuses = answers[: len(reconcilers)], answers[len(reconcilers) :]
    assert statuses == [200] * webhooks, answers
    assert [report["failed"] for report in reports] == [0, 0], reports
    order = webhook_instance.orders.get(session_id)
    assert order is not None
    assert order.state is OrderState.FULFILLED
    assert [lic.id for lic in webhook_instance.licenses.by_order(session_id)] == [
        license_id_for(session_id)
    ]
    assert queue.job_ids == [fulfillment_job_id(session_id)]
    assert webhook_instance.email_jobs.get(fulfillment_job_id(session_id)) is not None
