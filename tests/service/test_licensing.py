"""The license API and support operations on the in-memory unit of work: activation
policy, entitlement after refunds and disputes, rate limits, revocation and re-issue
(the same service on the emulator and through the function: tests/licensing)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from commerce.bootstrap import Container
from commerce.clock import FixedClock
from commerce.domain.ids import reissue_job_id
from commerce.domain.models import LicenseStatus
from commerce.domain.orders import OrderState
from commerce.errors import RateLimited
from commerce.licensing.schemas import StatusCode
from commerce.repositories.memory import MemoryRateLimits, MemoryStorage
from commerce.secrets import EnvSecrets
from commerce.unit_of_work import UnitOfWork
from tests.licensing.conftest import Plugin, make_settings
from tests.purchase.conftest import RecordingQueue
from tests.service.conftest import NoFirestore
from tests.support import factories


def machine(n: int) -> str:
    return f"machine-fingerprint-{n:04d}-" + "x" * 16


@pytest.fixture
def container(
    clock: FixedClock, storage: MemoryStorage, email_queue: RecordingQueue
) -> Iterator[Container]:
    built = Container(
        make_settings(license_rate_limit_per_key=20),
        clock=clock,
        secrets=EnvSecrets(dict(factories.TEST_SECRETS)),
    )
    built.db = NoFirestore()  # type: ignore[assignment]
    built.storage = storage  # type: ignore[misc]
    built.rate_limits = MemoryRateLimits(storage)  # type: ignore[misc,assignment]
    built.email_queue = email_queue  # type: ignore[misc,assignment]
    yield built
    if "license_service" in built.__dict__:
        built.license_service.close()


@pytest.fixture
def plugin(container: Container) -> Plugin:
    return Plugin(container.license_service)


@pytest.fixture
def bought(container: Container, storage: MemoryStorage, clock: FixedClock) -> Any:
    purchase = factories.purchase(container.keys, OrderState.FULFILLED, now=clock.now())

    def store(uow: UnitOfWork) -> None:
        uow.customers.put(purchase.customer)
        uow.orders.put(purchase.order)
        uow.licenses.put(purchase.license)

    storage.run(store)
    return purchase


def activations(storage: MemoryStorage) -> list[str]:
    return sorted(storage.all("activations"))


def test_activation_binds_the_machine_once_and_validation_finds_it(
    plugin: Plugin, bought: Any, storage: MemoryStorage
) -> None:
    first = plugin.activate(bought.key, machine(1), label="Studio")
    again = plugin.activate(bought.key, machine(1))

    assert first.status is again.status is StatusCode.VALID
    assert again.fields["reactivated"] is True
    assert first.fields["certificate"]
    assert len(activations(storage)) == 1
    assert storage.load("licenses", bought.license.id).activation_ids == tuple(activations(storage))
    assert plugin.validate(bought.key, machine(1)).status is StatusCode.VALID
    assert plugin.validate(bought.key, machine(2)).status is StatusCode.NO_ACTIVATION
    assert "license.activated" in storage.audit_actions()


def test_the_activation_limit_refuses_another_machine_and_names_the_holders(
    plugin: Plugin, bought: Any, storage: MemoryStorage
) -> None:
    for n in (1, 2, 3):
        assert plugin.activate(bought.key, machine(n)).status is StatusCode.VALID

    refused = plugin.activate(bought.key, machine(4))

    assert refused.status is StatusCode.TOO_MANY_ACTIVATIONS
    assert refused.fields["license"]["activations_used"] == 3
    assert len(refused.fields["activations"]) == 3
    assert len(activations(storage)) == 3


def test_a_machine_unseen_for_the_stale_period_gives_up_its_slot(
    container: Container, plugin: Plugin, bought: Any, storage: MemoryStorage, clock: FixedClock
) -> None:
    plugin.activate(bought.key, machine(1))
    clock.advance(days=container.settings.activation_stale_days + 1)
    plugin.activate(bought.key, machine(2))
    plugin.activate(bought.key, machine(3))

    answer = plugin.activate(bought.key, machine(4))

    assert answer.status is StatusCode.VALID
    assert len(activations(storage)) == 3
    assert "license.activation_released" in storage.audit_actions()
    assert plugin.validate(bought.key, machine(1)).status is StatusCode.NO_ACTIVATION


def test_deactivation_frees_the_slot(plugin: Plugin, bought: Any, storage: MemoryStorage) -> None:
    plugin.activate(bought.key, machine(1))

    answer = plugin.deactivate(bought.key, fingerprint=machine(1))

    assert answer.status is StatusCode.VALID
    assert activations(storage) == []
    assert storage.load("licenses", bought.license.id).activation_ids == ()


def test_unknown_keys_and_typos_are_told_apart_without_revealing_anything(
    plugin: Plugin, bought: Any, container: Container
) -> None:
    stranger = factories.purchase(container.keys, OrderState.FULFILLED, order_id="cs_other").key
    body = bought.key.removeprefix("GENX-")
    typo = "GENX-" + body[:-1] + ("0" if body[-1] != "0" else "1")

    assert plugin.validate(stranger).status is StatusCode.NOT_FOUND
    assert plugin.validate(stranger).fields == {}
    assert plugin.validate(typo).status is StatusCode.INVALID_KEY


def test_a_refund_or_dispute_answers_on_the_next_call_and_blocks_activation(
    container: Container, plugin: Plugin, bought: Any, storage: MemoryStorage
) -> None:
    assert plugin.validate(bought.key).status is StatusCode.VALID
    container.fulfillment.open_dispute(
        bought.order.id, ledger_id="evt_dispute", event_type="charge.dispute.created"
    )
    assert plugin.validate(bought.key).status is StatusCode.DISPUTED
    assert plugin.activate(bought.key, machine(1)).status is StatusCode.DISPUTED

    container.fulfillment.record_refund(
        bought.order.id,
        payment_intent_id=None,
        amount_refunded=4900,
        fully_refunded=True,
        ledger_id="evt_refund",
        event_type="charge.refunded",
    )

    assert plugin.validate(bought.key).status is StatusCode.REFUNDED
    assert plugin.updates(key=bought.key).status is StatusCode.REFUNDED
    assert activations(storage) == []


def test_the_per_key_limit_refuses_with_retry_after(plugin: Plugin, bought: Any) -> None:
    for _ in range(20):
        plugin.validate(bought.key)

    with pytest.raises(RateLimited) as limited:
        plugin.validate(bought.key)
    assert limited.value.retry_after_seconds >= 1


def test_support_revocation_revokes_order_and_license_at_once(
    container: Container, plugin: Plugin, bought: Any, storage: MemoryStorage
) -> None:
    revoked = container.license_support.revoke(bought.license.id, reason="abuse", actor="ops")

    assert revoked.status is LicenseStatus.REVOKED
    stored = storage.load("licenses", bought.license.id)
    assert (stored.status, stored.status_reason, stored.order_state) == (
        LicenseStatus.REVOKED,
        "abuse",
        OrderState.REVOKED,
    )
    assert storage.load("orders", bought.order.id).state is OrderState.REVOKED
    assert plugin.validate(bought.key).status is StatusCode.REVOKED


def test_a_reissued_key_replaces_the_old_one_at_once_and_mails_the_new_one(
    container: Container,
    plugin: Plugin,
    bought: Any,
    storage: MemoryStorage,
    email_queue: RecordingQueue,
) -> None:
    plugin.activate(bought.key, machine(1))
    assert plugin.validate(bought.key).status is StatusCode.VALID  # remembered

    reissued = container.license_support.reissue(bought.license.id, actor="ops")

    new_key = container.keys.key_for(bought.license.id, 2, reissued_secret(storage, bought))
    assert plugin.validate(bought.key).status is StatusCode.NOT_FOUND
    assert plugin.validate(new_key).status is StatusCode.VALID
    assert reissued.activations_reset == 1
    assert activations(storage) == []
    assert reissued.email_job_id == reissue_job_id(bought.license.id, 2)
    assert storage.load("email_jobs", reissued.email_job_id) is not None
    assert reissued.enqueued
    assert email_queue.job_ids == [reissued.email_job_id]


def reissued_secret(storage: MemoryStorage, bought: Any) -> str:
    license_ = storage.load("licenses", bought.license.id)
    assert license_.generation == 2
    return str(license_.secret_id)


def test_support_lookups_show_hints_never_keys(
    container: Container, bought: Any, plugin: Plugin
) -> None:
    plugin.activate(bought.key, machine(1))

    (found,) = container.license_support.by_key(bought.key)
    (by_email,) = container.license_support.by_email(bought.customer.email)

    assert found == by_email
    assert found.key_hint == bought.license.key_hint
    assert bought.key not in str(found)
    assert found.activations_used == 1
    (activation,) = container.license_support.activations(bought.license.id)
    assert activation.license_id == bought.license.id


def test_resetting_activations_frees_every_slot(
    container: Container, plugin: Plugin, bought: Any, storage: MemoryStorage
) -> None:
    for n in (1, 2):
        plugin.activate(bought.key, machine(n))

    assert container.license_support.reset_activations(bought.license.id, actor="ops") == 2

    assert activations(storage) == []
    assert plugin.activate(bought.key, machine(3)).status is StatusCode.VALID


def test_a_certificate_is_issued_only_for_an_activated_machine(
    plugin: Plugin, bought: Any, clock: FixedClock
) -> None:
    assert plugin.certificate(bought.key, machine(1)).status is StatusCode.NO_ACTIVATION
    plugin.activate(bought.key, machine(1))
    clock.advance(timedelta(days=1))

    answer = plugin.certificate(bought.key, machine(1))

    assert answer.status is StatusCode.VALID
    assert answer.fields["certificate"]


class NoReleases:
    def in_channel(self, channel: str) -> list[Any]:
        return []


def test_updates_need_an_activated_machine_and_the_licenses_own_channel(
    container: Container, bought: Any, storage: MemoryStorage
) -> None:
    container.__dict__["releases"] = NoReleases()  # releases live in Firestore
    plugin = Plugin(container.license_service)
    key_only = plugin.updates(key=bought.key)
    unknown_machine = plugin.updates(key=bought.key, fingerprint=machine(1))
    plugin.activate(bought.key, machine(1))
    stable = plugin.updates(key=bought.key, fingerprint=machine(1))
    beta = plugin.updates(key=bought.key, fingerprint=machine(1), channel="beta")
    container.license_support.set_beta(bought.license.id, on=True, actor="support:test")
    opted_in = plugin.updates(key=bought.key, fingerprint=machine(1), channel="beta")

    assert key_only.status is unknown_machine.status is StatusCode.NO_ACTIVATION
    assert stable.status is StatusCode.VALID
    assert beta.status is StatusCode.CHANNEL_NOT_ALLOWED
    assert opted_in.status is StatusCode.VALID
    assert opted_in.fields["update_available"] is False  # nothing published here
    assert storage.load("licenses", bought.license.id).beta_opt_in is True
    assert "license.beta_opt_in" in storage.audit_actions()
