"""Fixtures: the Stripe double as a real subprocess, the official client, a webhook receiver."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import stripe

REPO_ROOT = Path(__file__).resolve().parents[2]
WEBHOOK_SECRET = "whsec_test_double_secret_for_tests"
API_KEY = "sk_test_double_tests_key"


@dataclass
class Double:
    url: str
    process: subprocess.Popen[str]

    def control(self, path: str, **form: Any) -> requests.Response:
        return requests.post(f"{self.url}/_double/{path}", data=form, timeout=10)

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        params = {"type": event_type} if event_type else {}
        answer = requests.get(f"{self.url}/_double/events", params=params, timeout=10)
        answer.raise_for_status()
        data: list[dict[str, Any]] = answer.json()["data"]
        return data

    def settled_deliveries(self, event_type: str, timeout: float = 15.0) -> list[dict[str, Any]]:
        """Delivery records of the one `event_type` event, once none is pending."""
        deadline = time.monotonic() + timeout
        while True:
            (record,) = self.events(event_type)
            deliveries: list[dict[str, Any]] = record["deliveries"]
            if all(d["state"] != "pending" for d in deliveries):
                return deliveries
            if time.monotonic() > deadline:
                raise AssertionError(f"deliveries of {event_type} still pending: {deliveries}")
            time.sleep(0.05)


@pytest.fixture(scope="session")
def stripe_double(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Double]:
    log_path = tmp_path_factory.mktemp("stripe_double") / "stripe_double.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "emulators.stripe_double", "--port", "0",
             "--webhook-secret", WEBHOOK_SECRET, "--retry-base", "0.05",
             "--max-attempts", "4", "--async-delay", "0.3"],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )  # fmt: skip
        try:
            assert process.stdout is not None
            first_line = process.stdout.readline().strip()
            assert first_line.startswith("stripe-double listening on "), log_path.read_text()
            yield Double(first_line.rsplit(" ", 1)[1], process)
        finally:
            process.terminate()
            process.wait(timeout=10)
            if process.stdout is not None:
                process.stdout.close()


@pytest.fixture(autouse=True)
def fresh_double(stripe_double: Double) -> None:
    stripe_double.control("reset").raise_for_status()
    stripe_double.control("config", webhook_url="", retry_base="0.05", max_attempts="4",
                          async_delay="0.3").raise_for_status()  # fmt: skip


@pytest.fixture
def client(stripe_double: Double) -> stripe.StripeClient:
    return stripe.StripeClient(
        API_KEY, base_addresses={"api": stripe_double.url}, max_network_retries=0
    )


@dataclass
class Delivery:
    body: str
    signature: str
    status: int

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class Receiver:
    """A webhook endpoint that records every delivery and answers planned statuses."""

    url: str = ""
    deliveries: list[Delivery] = field(default_factory=list)
    planned_statuses: dict[str, list[int]] = field(default_factory=dict)
    condition: threading.Condition = field(default_factory=threading.Condition)

    def answer(self, event_type: str, *statuses: int) -> None:
        """The next deliveries of `event_type` get `statuses`; everything else gets 200."""
        with self.condition:
            self.planned_statuses.setdefault(event_type, []).extend(statuses)

    def record(self, body: str, signature: str) -> int:
        with self.condition:
            delivery = Delivery(body, signature, 200)
            planned = self.planned_statuses.get(delivery.event["type"])
            if planned:
                delivery.status = planned.pop(0)
            self.deliveries.append(delivery)
            self.condition.notify_all()
            return delivery.status

    def wait_for(
        self, predicate: Callable[[list[Delivery]], bool], timeout: float = 15.0
    ) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        with self.condition:
            while not predicate(self.deliveries):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    types = [d.event["type"] for d in self.deliveries]
                    raise AssertionError(f"webhook deliveries never matched; got {types}")
                self.condition.wait(remaining)
            return list(self.deliveries)

    def of_type(self, event_type: str) -> list[Delivery]:
        with self.condition:
            return [d for d in self.deliveries if d.event["type"] == event_type]


@pytest.fixture
def receiver(stripe_double: Double) -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
            status = state.record(body, self.headers.get("Stripe-Signature", ""))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_port}/webhook"
    stripe_double.control("config", webhook_url=state.url).raise_for_status()
    try:
        yield state
    finally:
        stripe_double.control("reset")
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def price(client: stripe.StripeClient) -> stripe.Price:
    product = client.v1.products.create({"name": "GENX plugin"})
    return client.v1.prices.create(
        {"product": product.id, "currency": "eur", "unit_amount": 4900, "lookup_key": "genx_eur"}
    )


@pytest.fixture
def open_session(client: stripe.StripeClient, price: stripe.Price) -> stripe.checkout.Session:
    return client.v1.checkout.sessions.create(
        {
            "mode": "payment",
            "line_items": [{"price": price.id, "quantity": 1}],
            "success_url": "http://shop.test/thanks?session={CHECKOUT_SESSION_ID}",
            "cancel_url": "http://shop.test/cancelled",
            "client_reference_id": "ref-42",
            "metadata": {"product": "genx", "ref": "friend"},
            "payment_intent_data": {"metadata": {"product": "genx", "ref": "friend"}},
        }
    )
