"""Firestore that accepts connections and never answers (a socket that holds them), or
one that refuses them (nothing listening, like a killed emulator):
the webhook, order_status, download and the license API answer 503
`dependency_timeout` instead of holding the request open (commerce.deadlines; the
budget is REQUEST_BUDGET_SECONDS, 7 s by default, 1 s here to keep the test short).
After Firestore is back, Stripe's redelivery of the refused event is applied once."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import functions_framework
import pytest
import requests

from commerce.bootstrap import Container, use_container
from commerce.licensing.verifier import SIGNATURE_HEADER
from commerce.repositories.base import new_firestore_client
from emulators.stripe_setup import client_for
from tests.fuzz.conftest import STRIPE_KEY, WEBHOOK_SECRET, Seeds
from tests.purchase import stripe_events as se
from tests.support.emulators import FIRESTORE_ENV, TEST_PROJECT

MAIN = str(Path(__file__).resolve().parents[2] / "functions" / "main.py")


@pytest.fixture(params=["silent", "refused"])
def black_hole(request: pytest.FixtureRequest) -> Iterator[str]:
    """127.0.0.1:PORT that accepts every connection and never sends a byte ("silent"),
    or where nothing listens any more, like a killed emulator ("refused")."""
    if request.param == "refused":
        closed = socket.create_server(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        closed.close()
        yield f"127.0.0.1:{port}"
        return
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        server.close()


@pytest.fixture
def down(
    installed: tuple[Container, Seeds], black_hole: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Container, Container, Seeds]]:
    """(an instance whose Firestore never answers, the healthy one, seeds)."""
    healthy, seeds = installed
    with monkeypatch.context() as env:
        env.setenv(FIRESTORE_ENV, black_hole)
        db = new_firestore_client(TEST_PROJECT)
    settings = healthy.settings.model_copy(update={"request_budget_seconds": 1.0})
    broken = Container(settings, clock=healthy.clock, secrets=healthy.secrets)
    broken.__dict__["db"] = db
    broken.__dict__["artifacts"] = healthy.artifacts
    broken.__dict__["email_queue"] = healthy.email_queue
    use_container(broken)
    try:
        yield broken, healthy, seeds
    finally:
        use_container(healthy)
        # Closing the channel first makes the license service's background rate-limit
        # flush (no request, so no budget) fail at once instead of retrying for the
        # library's 60 s; then its thread is stopped (its last flush fails: suppressed).
        db.close()
        if "license_service" in broken.__dict__:
            with contextlib.suppress(Exception):
                broken.license_service.close()


def client(function: str) -> Any:
    return functions_framework.create_app(function, MAIN).test_client()


def assert_unavailable(response: Any) -> dict[str, Any]:
    assert response.status_code == 503, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    assert body["error"] == "dependency_timeout"
    return body


def paid_on_the_double(settings: Any) -> dict[str, Any]:
    """A session Stripe (the double) created and saw paid, and its completed event (a
    paid session is verified with Stripe inside its transaction, after its first read)."""
    double = settings.stripe_api_base
    session = client_for(STRIPE_KEY, double).v1.checkout.sessions.create(
        {
            "mode": "payment",
            "line_items": [{"price": settings.stripe_price_id, "quantity": 1}],
            "success_url": "http://shop.test/ok",
            "metadata": {"product_id": "genx", "locale": "en", "ref": ""},
        }
    )
    requests.post(f"{double}/_double/sessions/{session.id}/pay", timeout=10).raise_for_status()
    events = requests.get(
        f"{double}/_double/events", params={"type": "checkout.session.completed"}, timeout=10
    ).json()["data"]
    found: dict[str, Any] = next(
        e["event"] for e in events if e["event"]["data"]["object"]["id"] == session.id
    )
    return found


def test_the_webhook_answers_503_and_the_redelivery_is_applied_once(down):
    _, healthy, _ = down
    evt = paid_on_the_double(healthy.settings)
    payload, header = se.signed(evt, WEBHOOK_SECRET)
    webhook = client("stripe_webhook")
    headers = {"Stripe-Signature": header, "Content-Type": "application/json"}

    assert_unavailable(webhook.post("/", data=payload, headers=headers))

    use_container(healthy)  # Firestore is back; Stripe delivers again, twice
    outcomes = []
    for _ in range(2):
        payload, header = se.signed(evt, WEBHOOK_SECRET)
        answer = webhook.post("/", data=payload, headers={**headers, "Stripe-Signature": header})
        assert answer.status_code == 200
        outcomes.append(answer.get_json()["outcome"])
    assert outcomes == ["fulfilled", "duplicate"]
    assert len(healthy.licenses.by_order(evt["data"]["object"]["id"])) == 1


def test_order_status_answers_503(down):
    _, _, seeds = down
    response = client("order_status").get("/", query_string={"session_id": seeds.session_id})
    assert_unavailable(response)


def test_download_answers_503(down):
    _, _, seeds = down
    assert_unavailable(client("download").get(f"/d/{seeds.token}"))


def test_the_license_api_answers_a_signed_503(down):
    _, _, seeds = down
    response = client("license_api").post(
        "/validate", data=json.dumps({"key": seeds.key, "nonce": "nonce-0123456789abcdef"}),
        content_type="application/json",
    )  # fmt: skip
    body = assert_unavailable(response)
    assert body["status"] == "UNAVAILABLE"
    assert body["nonce"] == "nonce-0123456789abcdef"
    assert response.headers.get(SIGNATURE_HEADER)
