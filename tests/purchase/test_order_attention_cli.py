"""A paid session with an unusable buyer address, end to end on the Firestore
emulator: the signed event through the `stripe_webhook` function's test client, then
`commerce orders attention` and `commerce orders set-email` (exactly one e-mail job)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import functions_framework
import pytest
from typer.testing import CliRunner

from commerce.bootstrap import Container, use_container
from commerce.cli import app
from commerce.domain.ids import fulfillment_job_id, license_id_for
from tests.purchase import stripe_events as se
from tests.purchase.conftest import WEBHOOK_SECRET, RecordingQueue, StubSessions

pytestmark = pytest.mark.emulators
SOURCE = str(Path(__file__).resolve().parents[2] / "functions" / "main.py")
runner = CliRunner()


@pytest.fixture
def installed(container: Container) -> Iterator[Container]:
    use_container(container)
    yield container
    use_container(None)


def paid_with(email: str | None, stripe: StubSessions) -> dict[str, Any]:
    """A paid session Stripe created (so the webhook's verification accepts it) whose
    buyer address is `email`."""
    session = se.checkout_session(None, email=None)
    session["customer_details"] = {"email": email, "name": "Jane Buyer"}
    stripe.created(session)
    return se.event("checkout.session.completed", session)


def post(evt: dict[str, Any]) -> Any:
    payload, header = se.signed(evt, WEBHOOK_SECRET)
    client = functions_framework.create_app("stripe_webhook", SOURCE).test_client()
    return client.post(
        "/", data=payload, headers={"Stripe-Signature": header, "Content-Type": "application/json"}
    )


def docs(db: Any, collection: str) -> dict[str, dict[str, Any]]:
    return {doc.id: doc.to_dict() for doc in db.collection(collection).stream()}


def audit_actions(db: Any) -> list[str]:
    return [entry["action"] for entry in docs(db, "audit_log").values()]


def test_support_finds_the_flagged_order_and_setting_the_address_sends_one_email(
    installed: Container,
    firestore_db: Any,
    email_queue: RecordingQueue,
    stub_sessions: StubSessions,
) -> None:
    evt = paid_with("jane@example.com\r\nBcc: everyone@example.com", stub_sessions)
    order_id = evt["data"]["object"]["id"]
    assert post(evt).status_code == 200

    order = docs(firestore_db, "orders")[order_id]
    assert order["needs_attention"] == "email_invalid"
    assert order["email_masked"] is None
    assert license_id_for(order_id) in docs(firestore_db, "licenses")
    assert docs(firestore_db, "email_jobs") == {}
    assert email_queue.job_ids == []
    assert "order.needs_attention" in audit_actions(firestore_db)

    listed = runner.invoke(app, ["orders", "attention", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [(row["id"], row["needs_attention"]) for row in json.loads(listed.stdout)] == [
        (order_id, "email_invalid")
    ]
    table = runner.invoke(app, ["orders", "attention"], env={"COLUMNS": "200"})
    assert table.exit_code == 0
    assert order_id in table.stdout
    assert "email_invalid" in table.stdout

    done = runner.invoke(app, ["orders", "set-email", order_id, "Jane@Example.com"])
    assert done.exit_code == 0, done.output
    assert "J***@example.com" in done.stdout

    job_id = fulfillment_job_id(order_id)
    assert list(docs(firestore_db, "email_jobs")) == [job_id]
    assert email_queue.job_ids == [job_id]
    order = docs(firestore_db, "orders")[order_id]
    assert order["needs_attention"] is None
    assert order["email_masked"] == "J***@example.com"
    assert audit_actions(firestore_db).count("order.email_set") == 1

    again = runner.invoke(app, ["orders", "set-email", order_id, "eve@example.com"])
    assert again.exit_code == 1
    assert "order_has_email" in again.output
    assert list(docs(firestore_db, "email_jobs")) == [job_id]
    assert email_queue.job_ids == [job_id]
    nothing = runner.invoke(app, ["orders", "attention", "--json"])
    assert json.loads(nothing.stdout) == []


def test_an_unusable_address_from_support_is_refused_with_its_code(
    installed: Container,
    firestore_db: Any,
    email_queue: RecordingQueue,
    stub_sessions: StubSessions,
) -> None:
    evt = paid_with(None, stub_sessions)
    assert post(evt).status_code == 200
    order_id = evt["data"]["object"]["id"]
    assert docs(firestore_db, "orders")[order_id]["needs_attention"] == "email_missing"

    refused = runner.invoke(
        app, ["orders", "set-email", order_id, "jane@example.com\nBcc: x@example.com"]
    )

    assert refused.exit_code == 1
    assert "invalid_email" in refused.output
    assert docs(firestore_db, "email_jobs") == {}
    assert email_queue.job_ids == []
    assert docs(firestore_db, "orders")[order_id]["needs_attention"] == "email_missing"
