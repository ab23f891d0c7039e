"""Stripe Radar's early fraud warnings (`radar.early_fraud_warning.created`): the order's
license is suspended, so downloads, activations and updates are refused; ops are
alerted; a dispute or refund then decides as usual. In-memory store, stub Stripe."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from commerce.bootstrap import Container
from commerce.clock import FixedClock
from commerce.delivery.download import LicenseSuspended
from commerce.domain.ids import license_id_for
from commerce.domain.models import License, LicenseStatus
from commerce.domain.orders import OrderState
from commerce.domain.tokens import hash_token
from commerce.errors import CommerceError
from commerce.licensing.schemas import StatusCode
from commerce.purchase.schemas import Outcome
from commerce.repositories.memory import MemoryRateLimits, MemoryStorage
from commerce.secrets import EnvSecrets
from tests.licensing.conftest import Plugin
from tests.purchase import stripe_events as se
from tests.purchase.conftest import (
    STRIPE_KEY,
    WEBHOOK_SECRET,
    RecordingQueue,
    StubSessions,
    make_settings,
    stripe_knows,
)
from tests.service.conftest import NoFirestore
from tests.service.test_download import LINUX, NET, UA, Releases, SignedUrls, release
from tests.support import factories

FINGERPRINT = "machine-fingerprint-0001-" + "x" * 16


@pytest.fixture
def container(
    clock: FixedClock,
    storage: MemoryStorage,
    email_queue: RecordingQueue,
    stub_sessions: StubSessions,
) -> Iterator[Container]:
    secrets = {
        **factories.TEST_SECRETS,
        "STRIPE_SECRET_KEY": STRIPE_KEY,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    built = Container(
        make_settings(license_rate_limit_per_key=1000, license_rate_limit_per_network=1000),
        clock=clock,
        secrets=EnvSecrets(secrets),
    )
    built.db = NoFirestore()  # type: ignore[assignment]
    built.storage = storage  # type: ignore[misc]
    built.rate_limits = MemoryRateLimits(storage)  # type: ignore[misc,assignment]
    built.email_queue = email_queue  # type: ignore[misc,assignment]
    built.stripe_gateway = stub_sessions  # type: ignore[misc,assignment]
    built.releases = Releases(release("1.0.0"))  # type: ignore[misc,assignment]
    built.artifacts = SignedUrls()  # type: ignore[misc,assignment]
    yield built
    if "license_service" in built.__dict__:
        built.license_service.close()


def send(container: Container, stub: StubSessions, evt: dict[str, Any]) -> Any:
    stripe_knows(stub, evt)
    payload, header = se.signed(evt, WEBHOOK_SECRET)
    return container.webhook_service.handle(payload, header)


def license_of(storage: MemoryStorage, session_id: str) -> License:
    found: License | None = storage.load("licenses", license_id_for(session_id))
    assert found is not None
    return found


def the_download_link(container: Container, storage: MemoryStorage) -> str:
    """The token of the download link fulfillment issued (re-derived, as the e-mail does)."""
    (token_hash,) = storage.all("download_tokens")
    grant = storage.load("download_tokens", token_hash)
    token: str = container.keys.token_for(grant.token_id, grant.secret_id)
    assert hash_token(token) == token_hash
    return token


@pytest.fixture
def bought(container: Container, stub_sessions: StubSessions, clock: FixedClock) -> dict[str, Any]:
    session = se.checkout_session()
    assert send(container, stub_sessions, se.event("checkout.session.completed", session))
    return session


def test_a_fraud_warning_suspends_downloads_activations_and_updates_and_alerts(
    container: Container,
    stub_sessions: StubSessions,
    storage: MemoryStorage,
    bought: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    session_id = bought["id"]
    issued = license_of(storage, session_id)
    key = container.keys.key_for(issued.id, issued.generation, issued.secret_id)
    plugin = Plugin(container.license_service)
    assert plugin.activate(key, FINGERPRINT).status is StatusCode.VALID
    token = the_download_link(container, storage)
    assert container.download_service.redeem(token, LINUX, network=NET, user_agent=UA)
    warning = se.early_fraud_warning("ch_any", bought["payment_intent"])

    with caplog.at_level(logging.INFO):
        result = send(
            container, stub_sessions, se.event("radar.early_fraud_warning.created", warning)
        )

    assert result.outcome is Outcome.SUSPENDED
    license_ = license_of(storage, session_id)
    assert (license_.status, license_.status_reason) == (
        LicenseStatus.SUSPENDED,
        "early_fraud_warning",
    )
    order = storage.load("orders", session_id)
    assert (order.state, order.fraud_warning_id) == (OrderState.FULFILLED, warning["id"])
    with pytest.raises(LicenseSuspended) as refused:
        container.download_service.redeem(token, LINUX, network=NET, user_agent=UA)
    assert refused.value.code == "license_suspended"
    assert plugin.validate(key, FINGERPRINT).status is StatusCode.DISPUTED
    assert plugin.updates(key=key).status is StatusCode.DISPUTED
    assert "order.fraud_warning" in storage.audit_actions()
    (alert,) = [r for r in caplog.records if getattr(r, "event", "") == "fraud.early_warning"]
    assert alert.levelno == logging.ERROR
    assert alert.warning_id == warning["id"]  # type: ignore[attr-defined]


def test_a_warning_naming_only_its_charge_is_traced_through_stripe(
    container: Container, stub_sessions: StubSessions, storage: MemoryStorage, bought: Any
) -> None:
    stub_sessions.charges["ch_only"] = se.charge(bought["payment_intent"]) | {"id": "ch_only"}
    warning = se.early_fraud_warning("ch_only", None)

    result = send(container, stub_sessions, se.event("radar.early_fraud_warning.created", warning))

    assert result.outcome is Outcome.SUSPENDED
    assert license_of(storage, bought["id"]).status is LicenseStatus.SUSPENDED


def test_a_warning_before_the_order_makes_the_license_start_suspended(
    container: Container, stub_sessions: StubSessions, storage: MemoryStorage
) -> None:
    session = se.checkout_session()
    stub_sessions.add(session)
    warning = se.early_fraud_warning("ch_x", session["payment_intent"])

    first = send(container, stub_sessions, se.event("radar.early_fraud_warning.created", warning))
    paid = send(container, stub_sessions, se.event("checkout.session.completed", session))

    assert (first.outcome, paid.outcome) == (Outcome.SUSPENDED, Outcome.FULFILLED)
    license_ = license_of(storage, session["id"])
    assert (license_.status, license_.status_reason) == (
        LicenseStatus.SUSPENDED,
        "early_fraud_warning",
    )


def test_a_won_dispute_after_a_warning_restores_and_a_refund_revokes(
    container: Container, stub_sessions: StubSessions, storage: MemoryStorage, bought: Any
) -> None:
    intent = bought["payment_intent"]
    warning = se.early_fraud_warning("ch_y", intent)
    send(container, stub_sessions, se.event("radar.early_fraud_warning.created", warning))
    send(container, stub_sessions, se.event("charge.dispute.created", se.dispute(intent)))
    won = se.dispute(intent, status="won")

    assert send(container, stub_sessions, se.event("charge.dispute.closed", won)).outcome is (
        Outcome.RESTORED
    )
    assert license_of(storage, bought["id"]).status is LicenseStatus.ACTIVE

    refund = se.charge(intent, amount_refunded=4900)
    send(container, stub_sessions, se.event("charge.refunded", refund))
    assert license_of(storage, bought["id"]).status is LicenseStatus.REVOKED


def test_the_same_warning_twice_changes_nothing(
    container: Container, stub_sessions: StubSessions, storage: MemoryStorage, bought: Any
) -> None:
    warning = se.early_fraud_warning("ch_z", bought["payment_intent"])
    evt = se.event("radar.early_fraud_warning.created", warning)
    send(container, stub_sessions, evt)
    audits = storage.audit_actions()

    assert send(container, stub_sessions, evt).outcome is Outcome.DUPLICATE
    again = se.event("radar.early_fraud_warning.created", warning)  # re-sent, new event id
    assert send(container, stub_sessions, again).outcome is Outcome.IGNORED
    assert storage.audit_actions() == audits


def test_a_warning_for_a_charge_that_is_not_ours_is_acknowledged(
    container: Container, stub_sessions: StubSessions, storage: MemoryStorage
) -> None:
    warning = se.early_fraud_warning("ch_foreign", "pi_foreign")

    result = send(container, stub_sessions, se.event("radar.early_fraud_warning.created", warning))

    assert result.outcome is Outcome.NO_ORDER
    assert storage.all("orders") == {}


def test_support_lifts_the_suspension_after_review_and_it_is_audited(
    container: Container, stub_sessions: StubSessions, storage: MemoryStorage, bought: Any
) -> None:
    warning = se.early_fraud_warning("ch_r", bought["payment_intent"])
    send(container, stub_sessions, se.event("radar.early_fraud_warning.created", warning))

    cleared = container.fulfillment.clear_fraud_warning(bought["id"], actor="support:ada")

    assert cleared.outcome is Outcome.RESTORED
    license_ = license_of(storage, bought["id"])
    assert (license_.status, license_.status_reason) == (LicenseStatus.ACTIVE, None)
    assert storage.load("orders", bought["id"]).fraud_warning_id is None
    assert storage.audit_actions()[-1] == "license.fraud_warning_cleared"
    again = container.fulfillment.clear_fraud_warning(bought["id"], actor="support:ada")
    assert again.outcome is Outcome.IGNORED


def test_lifting_a_fraud_warning_leaves_a_dispute_suspension_alone(
    container: Container, stub_sessions: StubSessions, storage: MemoryStorage, bought: Any
) -> None:
    intent = bought["payment_intent"]
    send(container, stub_sessions, se.event("charge.dispute.created", se.dispute(intent)))
    warning = se.early_fraud_warning("ch_d", intent)
    send(container, stub_sessions, se.event("radar.early_fraud_warning.created", warning))

    container.fulfillment.clear_fraud_warning(bought["id"], actor="support:ada")

    license_ = license_of(storage, bought["id"])
    assert (license_.status, license_.status_reason) == (LicenseStatus.SUSPENDED, "dispute")


def test_a_warning_whose_ids_lack_stripes_shape_is_refused_and_nothing_is_written(
    container: Container, stub_sessions: StubSessions, storage: MemoryStorage, bought: Any
) -> None:
    warning = se.early_fraud_warning("ch_x/../y", bought["payment_intent"])
    before = storage.all("licenses")

    with pytest.raises(CommerceError) as refused:
        send(container, stub_sessions, se.event("radar.early_fraud_warning.created", warning))

    assert (refused.value.status, refused.value.code) == (400, "invalid_stripe_id")
    assert storage.all("licenses") == before
