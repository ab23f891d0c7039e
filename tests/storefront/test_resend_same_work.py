"""`resend_links` does the same Google Cloud work for a buyer and for a stranger.

Every Firestore and Cloud Tasks call (and secret read) of the function is recorded at
the client-library level (tests/support/gcp_recorder.py, the IAM contract's recorder)
while the function answers, through functions-framework, on Google's Firestore
emulator and the Cloud Tasks emulator. The two requests' operations, in order and
counted, must be equal. Timing is measured, not asserted: docs/performance.md.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from functions_framework import create_app

from commerce.adapters.tasks_queue import CloudTasksEmailQueue
from commerce.bootstrap import Container, use_container
from commerce.clock import FixedClock
from commerce.domain.orders import OrderState
from commerce.secrets import EnvSecrets
from tests.storefront.conftest import STOREFRONT, make_settings
from tests.support import emulators as emu
from tests.support.factories import NOW, TEST_SECRETS, key_service, purchase
from tests.support.gcp_recorder import Operation, Recorder, recording

pytestmark = pytest.mark.emulators
MAIN = str(Path(__file__).resolve().parents[2] / "functions" / "main.py")


@pytest.fixture
def worker_url() -> Iterator[str]:
    """Where the queued tasks go: a sink answering 200 (the worker is not under test)."""

    class Sink(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_a_buyer_and_a_stranger_cost_the_same_google_cloud_operations(
    firestore_emulator: str,
    tasks_emulator: emu.TasksEmulator,
    worker_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emu.reset_firestore(firestore_emulator, emu.TEST_PROJECT)
    with recording(monkeypatch) as recorder:
        monkeypatch.setenv(emu.FIRESTORE_ENV, firestore_emulator)
        from google.cloud import firestore

        settings = make_settings(
            tasks_location=emu.TEST_TASKS_LOCATION,
            tasks_queue=emu.TEST_TASKS_QUEUE,
            tasks_emulator_host=tasks_emulator.host,
            email_worker_url=worker_url,
        )
        built = Container(settings, clock=FixedClock(NOW), secrets=EnvSecrets(dict(TEST_SECRETS)))
        built.__dict__["db"] = firestore.Client(project=emu.TEST_PROJECT)
        built.__dict__["email_queue"] = CloudTasksEmailQueue(
            settings, client=tasks_emulator.client()
        )
        bought = purchase(key_service(), OrderState.FULFILLED, email="ada@example.com")
        built.customers.put(bought.customer)
        built.orders.put(bought.order)
        assert bought.license is not None
        built.licenses.put(bought.license)
        use_container(built)
        try:
            client = create_app("resend_links", MAIN).test_client()
            ask(recorder, client, "warm-up@example.com")  # first use: secrets, clients
            buyer = ask(recorder, client, "ada@example.com")
            stranger = ask(recorder, client, "eve@example.com")
            buyer_again = ask(recorder, client, "ada@example.com")
        finally:
            use_container(None)
            built.db.close()
            built.email_queue.client.transport.close()

    assert buyer == stranger == buyer_again
    kinds = [(op.action, op.resource) for op in buyer]
    assert kinds.count(("tasks.create", emu.TEST_TASKS_QUEUE)) == 1
    assert {resource for _, resource in kinds if resource not in {"(database)"}} == {
        "rate_limits",
        emu.TEST_TASKS_QUEUE,
    }


def ask(recorder: Recorder, client: Any, email: str) -> list[Operation]:
    """The operations one request of `resend_links` performs, in order."""
    start = len(recorder.sequence)
    with recorder.acting_as("resend_links"):
        answer = client.post("/", json={"email": email}, headers={"Origin": STOREFRONT})
    assert answer.status_code == 202, answer.get_data(as_text=True)
    with recorder.lock:
        return [op for label, op in recorder.sequence[start:] if label == "resend_links"]
