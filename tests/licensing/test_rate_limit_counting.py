"""How the license API counts rate limits off the request path (`DeferredCounter`),
against Google's Firestore emulator: an instance counts its own hits exactly, written
or not and never twice; another instance's hits count once that instance has written
them and this one has learnt them, from its own next write or by reading a stale view
(the documented approximation); a flood is audited once."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from commerce.bootstrap import Container
from commerce.clock import FixedClock
from commerce.errors import RateLimited
from commerce.licensing.schemas import StatusCode
from tests.licensing.conftest import Bought, Plugin, build_container, make_settings

pytestmark = pytest.mark.emulators

NEVER = 3600.0  # seconds: the background thread does not write during the test


def instance(firestore_db: Any, clock: FixedClock, **limits: int) -> tuple[Container, Plugin]:
    """One function instance: its own container, service and counter."""
    built = build_container(make_settings(**limits), clock, firestore_db)
    built.license_service.counter.flush_seconds = NEVER
    built.license_service.counter.fresh_seconds = NEVER  # a view, once learnt, stays
    return built, Plugin(built.license_service)


def stored_count(container: Container, key: str, limit: int) -> int:
    bucket = f"license:key:{container.keys.hash_key(key)}"
    window = container.rate_limiter.window(bucket, limit)
    snapshot = container.rate_limits.ref_of(window).get()
    return int((snapshot.to_dict() or {}).get("count", 0)) if snapshot.exists else 0


def test_an_instance_counts_its_own_hits_exactly_written_or_not(
    bought: Bought, firestore_db: Any, clock: FixedClock
) -> None:
    built, plugin = instance(firestore_db, clock, license_rate_limit_per_key=3)
    counter = plugin.service.counter

    assert plugin.validate(bought.key).status is StatusCode.VALID
    counter.flush()
    assert plugin.validate(bought.key).status is StatusCode.VALID
    counter.flush()
    assert plugin.validate(bought.key).status is StatusCode.VALID  # not written yet
    with pytest.raises(RateLimited) as refused:
        plugin.validate(bought.key)

    assert 1 <= refused.value.retry_after_seconds <= 60
    counter.flush()
    assert stored_count(built, bought.key, 3) == 4  # every hit written once, refused too


def two_instances_after_three_hits(
    bought: Bought, firestore_db: Any, clock: FixedClock
) -> tuple[Plugin, Plugin]:
    _, first = instance(firestore_db, clock, license_rate_limit_per_key=3)
    _, second = instance(firestore_db, clock, license_rate_limit_per_key=3)
    assert first.validate(bought.key).status is StatusCode.VALID
    assert first.validate(bought.key).status is StatusCode.VALID

    # The approximation: hits another instance has not written yet are not seen.
    assert second.validate(bought.key).status is StatusCode.VALID  # reads: nothing known
    first.service.counter.flush()
    return first, second


def test_another_instances_written_hits_count_once_this_one_writes_its_own(
    bought: Bought, firestore_db: Any, clock: FixedClock
) -> None:
    _, second = two_instances_after_three_hits(bought, firestore_db, clock)
    # Its view (read before the first's write) still says 0 others: not yet seen.
    assert second.validate(bought.key).status is StatusCode.VALID  # 0 + 2 of its own

    second.service.counter.flush()  # the write reports the totals: 2 others
    with pytest.raises(RateLimited):
        second.validate(bought.key)  # 2 written by the first + 3 of its own > 3


def test_a_stale_view_of_the_others_is_read_again_on_the_request(
    bought: Bought, firestore_db: Any, clock: FixedClock
) -> None:
    _, second = two_instances_after_three_hits(bought, firestore_db, clock)
    second.service.counter.fresh_seconds = 0.0  # every view is stale at once

    with pytest.raises(RateLimited):
        second.validate(bought.key)  # read on the request: 2 others + 2 of its own > 3


def test_a_flood_is_audited_once_per_bucket_and_window_on_an_instance(
    container: Container, bought: Bought, firestore_db: Any, clock: FixedClock
) -> None:
    _, plugin = instance(firestore_db, clock, license_rate_limit_per_key=1)
    plugin.validate(bought.key)
    for _ in range(3):
        with pytest.raises(RateLimited):
            plugin.validate(bought.key)

    audited = container.audit_log.recent(action="license.refused")
    assert [e.details.get("status") for e in audited] == ["RATE_LIMITED"]


def test_the_background_thread_writes_the_hits(
    bought: Bought, firestore_db: Any, clock: FixedClock
) -> None:
    built, plugin = instance(firestore_db, clock, license_rate_limit_per_key=10)
    counter = plugin.service.counter
    counter.flush_seconds = 0.0
    written = threading.Event()
    add_hits = counter.repository.add_hits

    def recording(*args: Any, **kwargs: Any) -> None:
        add_hits(*args, **kwargs)
        written.set()

    counter.repository.add_hits = recording  # type: ignore[method-assign]
    plugin.validate(bought.key)

    assert written.wait(timeout=30)  # liveness only: no claim about how soon
    assert stored_count(built, bought.key, 10) == 1
