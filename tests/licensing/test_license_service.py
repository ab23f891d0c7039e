"""The license service against Google's Firestore emulator: every status code,
activations and their limit, live state changes, rate limits and the audit trail."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from commerce.bootstrap import Container
from commerce.clock import FixedClock
from commerce.domain.orders import OrderState
from commerce.errors import RateLimited, TransientFailure
from commerce.licensing.schemas import StatusCode, activation_id, fingerprint_hash
from commerce.licensing.verifier import CertificateState, verify_certificate
from commerce.unit_of_work import Storage, UnitOfWork
from tests.licensing.conftest import (
    Bought,
    Plugin,
    build_container,
    buy,
    machine,
    make_settings,
    refund,
)
from tests.support.threads import run_together

pytestmark = pytest.mark.emulators


class NoLicenseLookups(Storage):
    """A storage whose units of work have no licenses: a license lookup fails the test."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def unit_of_work(self) -> UnitOfWork:
        return self._without_licenses(self.storage.unit_of_work())

    def batch(self) -> UnitOfWork:
        return self._without_licenses(self.storage.batch())

    @staticmethod
    def _without_licenses(uow: UnitOfWork) -> UnitOfWork:
        uow.licenses = None  # type: ignore[assignment]
        return uow


def refusals(container: Container) -> list[dict]:
    return [
        {"status": e.details.get("status"), "operation": e.details.get("operation")}
        for e in container.audit_log.recent(action="license.refused")
    ]


# -- status codes ----------------------------------------------------------------------


def test_a_good_key_without_fingerprint_is_valid(plugin: Plugin, bought: Bought) -> None:
    answer = plugin.validate(bought.key)

    assert answer.status is StatusCode.VALID
    assert answer.fields["license"]["id"] == bought.license_id
    assert answer.fields["license"]["activations_used"] == 0
    assert answer.fields["activation"] is None


def test_a_key_pasted_sloppily_is_still_valid(plugin: Plugin, bought: Bought) -> None:
    sloppy = bought.key.lower().replace("-", " ").replace("genx", "")

    assert plugin.validate(sloppy).status is StatusCode.VALID


def test_an_unknown_key_learns_only_not_found(
    plugin: Plugin, bought: Bought, container: Container
) -> None:
    stranger = container.keys.issue_key("lic_somebody_else").key

    answer = plugin.validate(stranger, machine(1))

    assert answer.status is StatusCode.NOT_FOUND
    assert answer.fields == {}
    assert refusals(container) == [{"status": "NOT_FOUND", "operation": "validate"}]


def test_a_typo_is_invalid_key_before_any_lookup(
    plugin: Plugin, bought: Bought, container: Container
) -> None:
    body = bought.key.removeprefix("GENX-")
    one_changed = body[:-1] + ("0" if body[-1] != "0" else "1")
    container.license_state.storage = NoLicenseLookups(container.storage)  # any would fail

    answer = plugin.validate("GENX-" + one_changed)

    assert answer.status is StatusCode.INVALID_KEY
    if body[0] != body[1]:
        swapped = body[1] + body[0] + body[2:]
        assert plugin.validate("GENX-" + swapped).status is StatusCode.INVALID_KEY


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (OrderState.REFUNDED, StatusCode.REFUNDED),
        (OrderState.DISPUTED, StatusCode.DISPUTED),
        (OrderState.REVOKED, StatusCode.REVOKED),
    ],
)
def test_the_order_state_decides_the_status(
    plugin: Plugin, container: Container, state: OrderState, expected: StatusCode
) -> None:
    bought = buy(container, state)

    answer = plugin.validate(bought.key, machine(1))

    assert answer.status is expected
    assert answer.fields == {}
    assert plugin.activate(bought.key, machine(1)).status is expected


def test_a_machine_that_is_not_activated_gets_no_activation(plugin: Plugin, bought: Bought) -> None:
    plugin.activate(bought.key, machine(1))

    answer = plugin.validate(bought.key, machine(2))

    assert answer.status is StatusCode.NO_ACTIVATION
    assert answer.fields["license"]["activations_used"] == 1


def test_an_activated_machine_validates_with_its_activation(plugin: Plugin, bought: Bought) -> None:
    activated = plugin.activate(bought.key, machine(1), label="Studio PC")

    answer = plugin.validate(bought.key, machine(1))

    assert answer.status is StatusCode.VALID
    assert answer.fields["activation"]["id"] == activated.fields["activation"]["id"]
    assert answer.fields["activation"]["label"] == "Studio PC"


def test_deactivating_with_another_machines_activation_id_is_fingerprint_mismatch(
    plugin: Plugin, bought: Bought
) -> None:
    first = plugin.activate(bought.key, machine(1)).fields["activation"]["id"]
    plugin.activate(bought.key, machine(2))

    answer = plugin.deactivate(bought.key, activation_id=first, fingerprint=machine(2))

    assert answer.status is StatusCode.FINGERPRINT_MISMATCH
    assert plugin.validate(bought.key, machine(1)).status is StatusCode.VALID


def test_a_certificate_presented_from_another_machine_is_fingerprint_mismatch(
    plugin: Plugin, bought: Bought
) -> None:
    certificate = plugin.activate(bought.key, machine(1)).fields["certificate"]

    answer = plugin.updates(certificate=certificate, fingerprint=machine(2))

    assert answer.status is StatusCode.FINGERPRINT_MISMATCH


# -- activations -------------------------------------------------------------------------


def test_activating_the_same_machine_again_uses_no_new_slot(
    plugin: Plugin, bought: Bought, container: Container, clock: FixedClock
) -> None:
    first = plugin.activate(bought.key, machine(1))
    clock.advance(hours=1)
    second = plugin.activate(bought.key, machine(1))

    assert first.status is second.status is StatusCode.VALID
    assert second.fields["reactivated"] is True
    assert second.fields["activation"]["id"] == first.fields["activation"]["id"]
    assert second.fields["license"]["activations_used"] == 1
    assert len(container.license_state.activations_of(bought.license_id)) == 1
    expected_id = activation_id(bought.license_id, fingerprint_hash(machine(1)))
    assert first.fields["activation"]["id"] == expected_id


def test_the_activation_limit_refuses_the_fourth_machine_and_names_the_holders(
    plugin: Plugin, bought: Bought, container: Container
) -> None:
    for n in (1, 2, 3):
        assert plugin.activate(bought.key, machine(n)).status is StatusCode.VALID

    answer = plugin.activate(bought.key, machine(4), label="Laptop")

    assert answer.status is StatusCode.TOO_MANY_ACTIVATIONS
    assert answer.fields["license"]["activations_used"] == 3
    assert len(answer.fields["activations"]) == 3
    assert len(container.license_state.activations_of(bought.license_id)) == 3
    assert {"status": "TOO_MANY_ACTIVATIONS", "operation": "activate"} in refusals(container)


def test_deactivate_then_activate_elsewhere(
    plugin: Plugin, bought: Bought, container: Container
) -> None:
    for n in (1, 2, 3):
        plugin.activate(bought.key, machine(n))

    freed = plugin.deactivate(bought.key, fingerprint=machine(2))
    moved = plugin.activate(bought.key, machine(4))

    assert freed.status is StatusCode.VALID
    assert freed.fields["license"]["activations_used"] == 2
    assert moved.status is StatusCode.VALID
    assert plugin.validate(bought.key, machine(2)).status is StatusCode.NO_ACTIVATION
    assert plugin.validate(bought.key, machine(4)).status is StatusCode.VALID
    actions = [e.action for e in container.audit_log.recent(limit=50)]
    assert actions.count("license.activated") == 4
    assert actions.count("license.deactivated") == 1


def test_deactivating_a_machine_that_is_not_activated_is_no_activation(
    plugin: Plugin, bought: Bought
) -> None:
    assert plugin.deactivate(bought.key, fingerprint=machine(9)).status is (
        StatusCode.NO_ACTIVATION
    )


def test_a_machine_not_seen_for_the_stale_period_gives_up_its_slot(
    plugin: Plugin, bought: Bought, container: Container, clock: FixedClock
) -> None:
    plugin.activate(bought.key, machine(1))
    clock.advance(days=200)  # activation_stale_days defaults to 180
    plugin.activate(bought.key, machine(2))
    plugin.activate(bought.key, machine(3))
    clock.advance(days=1)

    answer = plugin.activate(bought.key, machine(4))

    assert answer.status is StatusCode.VALID
    assert plugin.validate(bought.key, machine(1)).status is StatusCode.NO_ACTIVATION
    released = container.audit_log.recent(action="license.activation_released")
    assert [e.details["reason"] for e in released] == ["stale"]


def test_concurrent_activations_never_exceed_the_limit(container: Container) -> None:
    bought = buy(container, activation_limit=2)
    answers: list[StatusCode] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def activate(n: int) -> None:
        plugin = Plugin(container.license_service)
        for _ in range(20):  # storage contention (503) is retried, as the plugin would
            try:
                status = plugin.activate(bought.key, machine(n)).status
            except TransientFailure:
                continue
            except BaseException as error:
                with lock:
                    errors.append(error)
                return
            with lock:
                answers.append(status)
            return

    run_together(activate, [(n,) for n in range(1, 5)])

    stored = container.license_state.activations_of(bought.license_id)
    assert errors == []
    assert len(answers) == 4
    assert answers.count(StatusCode.VALID) == len(stored) == 2
    assert answers.count(StatusCode.TOO_MANY_ACTIVATIONS) == 2
    license_ = container.licenses.get(bought.license_id)
    assert license_ is not None
    assert set(license_.activation_ids) == {a.id for a in stored}


# -- live state ------------------------------------------------------------------------------


def test_a_revocation_is_seen_on_the_next_validate(
    plugin: Plugin, bought: Bought, container: Container
) -> None:
    plugin.activate(bought.key, machine(1))
    assert plugin.validate(bought.key, machine(1)).status is StatusCode.VALID

    container.license_support.revoke(bought.license_id, reason="support", actor="test")

    assert plugin.validate(bought.key, machine(1)).status is StatusCode.REVOKED


def test_a_refund_is_seen_on_the_next_validate(
    plugin: Plugin, bought: Bought, container: Container
) -> None:
    plugin.activate(bought.key, machine(1))
    plugin.validate(bought.key, machine(1))  # warms the per-process identity cache

    refund(container, bought)  # through fulfillment, as the webhook applies it

    assert plugin.validate(bought.key, machine(1)).status is StatusCode.REFUNDED


def test_an_open_dispute_suspends_and_a_won_dispute_restores(
    plugin: Plugin, bought: Bought, container: Container
) -> None:
    container.fulfillment.open_dispute(
        bought.order_id, ledger_id="evt_dispute_opened", event_type="charge.dispute.created"
    )
    assert plugin.validate(bought.key).status is StatusCode.DISPUTED

    container.fulfillment.close_dispute(
        bought.order_id, won=True, ledger_id="evt_dispute_won", event_type="charge.dispute.closed"
    )
    assert plugin.validate(bought.key).status is StatusCode.VALID


def test_a_lost_dispute_revokes(plugin: Plugin, bought: Bought, container: Container) -> None:
    container.fulfillment.open_dispute(
        bought.order_id, ledger_id="evt_dispute_opened", event_type="charge.dispute.created"
    )
    container.fulfillment.close_dispute(
        bought.order_id, won=False, ledger_id="evt_dispute_lost", event_type="charge.dispute.closed"
    )
    assert plugin.validate(bought.key).status is StatusCode.REVOKED


def test_a_reissued_key_replaces_the_old_one_at_once(
    plugin: Plugin, bought: Bought, container: Container
) -> None:
    assert plugin.validate(bought.key).status is StatusCode.VALID  # cached identity

    result = container.license_support.reissue(bought.license_id, actor="test")
    secret_id = container.keys.material.current_secret_id
    new_key = container.keys.key_for(bought.license_id, result.generation, secret_id)

    assert new_key != bought.key
    assert plugin.validate(bought.key).status is StatusCode.NOT_FOUND
    assert plugin.validate(new_key).status is StatusCode.VALID


# -- certificates ----------------------------------------------------------------------------


def test_activation_returns_a_certificate_the_public_key_alone_verifies(
    plugin: Plugin, bought: Bought, public_keys: dict, clock: FixedClock
) -> None:
    answer = plugin.activate(bought.key, machine(1))
    now = int(clock.now().timestamp())

    check = verify_certificate(
        answer.fields["certificate"], public_keys, now=now, fingerprint=machine(1), product="genx"
    )

    assert check.state is CertificateState.VALID
    assert check.payload is not None
    assert check.payload["license_id"] == bought.license_id
    assert check.payload["key_hint"] == bought.key[-4:]
    assert check.payload["entitled_major_versions"] == [1]
    assert check.offline_until == answer.fields["offline_until"]
    assert check.offline_until == now + 28 * 86400


def test_a_certificate_refresh_needs_an_activation(plugin: Plugin, bought: Bought) -> None:
    assert plugin.certificate(bought.key, machine(1)).status is StatusCode.NO_ACTIVATION

    plugin.activate(bought.key, machine(1))
    answer = plugin.certificate(bought.key, machine(1))

    assert answer.status is StatusCode.VALID
    assert answer.fields["certificate"].startswith("genxcert1.")


# -- rate limits -----------------------------------------------------------------------------


def limited_plugin(container: Container, firestore_db, clock: FixedClock, **limits) -> Plugin:
    limited = build_container(make_settings(**limits), clock, firestore_db)
    return Plugin(limited.license_service)


def test_validations_per_key_are_rate_limited_with_a_retry_after(
    container: Container, bought: Bought, firestore_db, clock: FixedClock
) -> None:
    plugin = limited_plugin(container, firestore_db, clock, license_rate_limit_per_key=3)
    for _ in range(3):
        assert plugin.validate(bought.key).status is StatusCode.VALID

    with pytest.raises(RateLimited) as refused:
        plugin.validate(bought.key)

    assert 1 <= refused.value.retry_after_seconds <= 60
    other_network = Plugin(plugin.service, network="198.51.100.9/32")
    with pytest.raises(RateLimited):
        other_network.validate(bought.key)  # the key's bucket, whatever the network
    assert {"status": "RATE_LIMITED", "operation": None} in refusals(container)


def test_requests_per_network_are_rate_limited_across_keys(
    container: Container, firestore_db, clock: FixedClock
) -> None:
    plugin = limited_plugin(container, firestore_db, clock, license_rate_limit_per_network=2)
    keys = [buy(container, n=n).key for n in (1, 2, 3)]

    assert plugin.validate(keys[0]).status is StatusCode.VALID
    assert plugin.validate(keys[1]).status is StatusCode.VALID
    with pytest.raises(RateLimited):
        plugin.validate(keys[2])
    with pytest.raises(RateLimited):
        plugin.validate("GENX-0000-0000-0001")  # typos count against the network too


def test_activations_per_license_are_rate_limited(
    container: Container, bought: Bought, firestore_db, clock: FixedClock
) -> None:
    plugin = limited_plugin(
        container, firestore_db, clock, license_activation_rate_limit_per_hour=2
    )
    plugin.activate(bought.key, machine(1))
    plugin.activate(bought.key, machine(1))

    with pytest.raises(RateLimited) as refused:
        plugin.activate(bought.key, machine(1))

    assert refused.value.retry_after_seconds <= 3600
    clock.advance(hours=1)
    assert plugin.activate(bought.key, machine(1)).status is StatusCode.VALID


def test_the_rate_limit_window_ends(
    container: Container, bought: Bought, firestore_db, clock: FixedClock
) -> None:
    plugin = limited_plugin(container, firestore_db, clock, license_rate_limit_per_key=1)
    plugin.validate(bought.key)
    with pytest.raises(RateLimited):
        plugin.validate(bought.key)

    clock.advance(timedelta(seconds=60))

    assert plugin.validate(bought.key).status is StatusCode.VALID
