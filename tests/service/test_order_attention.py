"""A paid session without a usable buyer address: fulfilled, flagged, audited and
alerted; support sets the address and the e-mail goes out once (in-memory unit of
work; the CLI and the emulator path are in tests/purchase/test_order_attention_cli.py)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from commerce.domain.ids import fulfillment_job_id, license_id_for
from commerce.domain.models import Order
from commerce.domain.orders import OrderState
from commerce.purchase.attention import InvalidEmail, NothingToFix, OrderUnknown
from commerce.purchase.schemas import Outcome
from commerce.repositories.memory import MemoryStorage
from tests.purchase import stripe_events as se


def paid_with(email: Any, session_id: str | None = None) -> dict[str, Any]:
    session = se.checkout_session(session_id, email=None)
    session["customer_details"] = {"email": email, "name": "Jane Buyer"}
    return se.event("checkout.session.completed", session)


def order_of(storage: MemoryStorage, session_id: str) -> Order:
    order = storage.load("orders", session_id)
    assert order is not None
    return order


def unusable_events(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == "fulfillment.email_unusable"]


@pytest.mark.parametrize(
    ("email", "reason"),
    [
        (None, "email_missing"),
        ("", "email_missing"),
        ("jane@example.com\r\nBcc: all@example.com", "email_invalid"),
        ("jane@exa\nmple.com", "email_invalid"),
        ("jane\x00@example.com", "email_invalid"),
        ("jane@localhost", "email_invalid"),
        ("not an address", "email_invalid"),
    ],
)
def test_a_paid_session_without_a_usable_address_is_fulfilled_flagged_audited_and_alerted(
    deliver: Any,
    storage: MemoryStorage,
    email_queue: Any,
    caplog: pytest.LogCaptureFixture,
    email: Any,
    reason: str,
) -> None:
    evt = paid_with(email)
    session_id = evt["data"]["object"]["id"]
    caplog.set_level(logging.INFO)

    assert deliver(evt).outcome is Outcome.FULFILLED

    order = order_of(storage, session_id)
    assert order.state is OrderState.FULFILLED
    assert order.needs_attention == reason
    assert order.email_masked is None
    assert order.customer_id is None
    assert storage.load("licenses", license_id_for(session_id)) is not None
    assert storage.all("email_jobs") == {}
    assert email_queue.job_ids == []
    assert storage.all("customers") == {}
    assert "order.needs_attention" in storage.audit_actions()
    [alert] = unusable_events(caplog)
    assert alert.levelno == logging.ERROR
    assert getattr(alert, "reason", None) == reason


def test_a_usable_address_is_not_flagged(
    deliver: Any, storage: MemoryStorage, caplog: pytest.LogCaptureFixture
) -> None:
    evt = paid_with("  Jane.Buyer@Example.COM ")
    deliver(evt)
    order = order_of(storage, evt["data"]["object"]["id"])
    assert order.needs_attention is None
    assert order.email_masked == "J***@example.com"
    assert "order.needs_attention" not in storage.audit_actions()
    assert unusable_events(caplog) == []


def test_attention_lists_flagged_orders_only(container: Any, deliver: Any) -> None:
    missing, invalid, fine = paid_with(None), paid_with("x\r\n@example.com"), paid_with("a@b.org")
    for evt in (missing, invalid, fine):
        deliver(evt)
    listed = {order.id: order.needs_attention for order in container.order_attention.pending()}
    assert listed == {
        missing["data"]["object"]["id"]: "email_missing",
        invalid["data"]["object"]["id"]: "email_invalid",
    }


def test_setting_the_address_sends_the_email_exactly_once(
    container: Any, deliver: Any, storage: MemoryStorage, email_queue: Any
) -> None:
    evt = paid_with("jane@example.com\r\n")
    session_id = evt["data"]["object"]["id"]
    deliver(evt)

    done = container.order_attention.set_email(session_id, "Jane@Example.com")

    job_id = fulfillment_job_id(session_id)
    assert done.email_job_id == job_id
    assert done.enqueued
    assert email_queue.job_ids == [job_id]
    job = storage.load("email_jobs", job_id)
    assert job.order_ids == (session_id,)
    assert job.license_ids == (license_id_for(session_id),)
    assert job.download_token_ids == order_of(storage, session_id).download_token_ids
    order = order_of(storage, session_id)
    assert order.needs_attention is None
    assert order.email_masked == "J***@example.com"
    assert order.customer_id == job.customer_id
    assert storage.load("licenses", license_id_for(session_id)).customer_id == job.customer_id
    customer = storage.load("customers", job.customer_id)
    assert customer.email == "jane@example.com"
    assert customer.order_ids == (session_id,)
    assert storage.audit_actions().count("order.email_set") == 1

    with pytest.raises(NothingToFix):
        container.order_attention.set_email(session_id, "other@example.com")
    assert email_queue.job_ids == [job_id]
    assert len(storage.all("email_jobs")) == 1
    assert container.order_attention.pending() == []


def test_setting_an_unusable_address_or_on_an_unknown_order_changes_nothing(
    container: Any, deliver: Any, storage: MemoryStorage, email_queue: Any
) -> None:
    evt = paid_with(None)
    session_id = evt["data"]["object"]["id"]
    deliver(evt)
    before = {name: storage.all(name) for name in ("orders", "licenses", "customers")}
    for bad in ("jane@example.com\nBcc: x@example.com", "nobody", "a@b"):
        with pytest.raises(InvalidEmail):
            container.order_attention.set_email(session_id, bad)
    with pytest.raises(OrderUnknown):
        container.order_attention.set_email("cs_test_unknown", "jane@example.com")
    assert {name: storage.all(name) for name in before} == before
    assert email_queue.job_ids == []
    assert storage.all("email_jobs") == {}


def test_an_order_that_has_an_address_cannot_be_given_another(
    container: Any, deliver: Any, storage: MemoryStorage
) -> None:
    evt = paid_with("jane@example.com")
    deliver(evt)
    with pytest.raises(NothingToFix):
        container.order_attention.set_email(evt["data"]["object"]["id"], "eve@example.com")
    assert len(storage.all("email_jobs")) == 1


class RecordingAttention:
    def __init__(self) -> None:
        self.set: list[tuple[str, str]] = []

    def set_email(self, order_id: str, email: str) -> Any:
        from commerce.purchase.attention import EmailSet

        self.set.append((order_id, email))
        return EmailSet(order_id, "j***@example.com", "email_x", enqueued=True)


def test_set_email_asks_before_changing_production_and_does_nothing_on_no() -> None:
    from typer.testing import CliRunner

    from commerce.bootstrap import Container, use_container
    from commerce.cli import app
    from commerce.secrets import EnvSecrets
    from commerce.settings import Settings

    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        environment="production",
        gcp_project="genx-production",
        storefront_url="https://shop.example.com",
        public_base_url="https://shop.example.com",
        artifacts_bucket="genx-artifacts",
        secrets_backend="secret-manager",
        url_signing_key_file="",
        stripe_api_base="",
    )
    built = Container(settings, secrets=EnvSecrets({}))
    fake = RecordingAttention()
    built.__dict__["order_attention"] = fake
    use_container(built)
    try:
        args = ["orders", "set-email", "cs_test_1", "jane@example.com"]
        refused = CliRunner().invoke(app, args, input="n\n")
        asked = CliRunner().invoke(app, args, input="y\n")
    finally:
        use_container(None)

    assert refused.exit_code == 1
    assert "in PRODUCTION (project genx-production)?" in refused.output
    assert asked.exit_code == 0, asked.output
    assert fake.set == [("cs_test_1", "jane@example.com")]
    assert "j***@example.com" in asked.stdout
