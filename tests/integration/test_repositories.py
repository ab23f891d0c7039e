"""Repositories against Google's Firestore emulator (never a mock)."""

import threading
from datetime import UTC, datetime, timedelta

import pytest

from commerce.domain.models import AuditEntry, Order, WebhookEventRecord
from commerce.domain.orders import OrderState
from commerce.domain.tokens import DownloadGrant, generate_token
from commerce.errors import AlreadyExists
from commerce.repositories.base import run_transaction
from commerce.repositories.collections import (
    AuditLogRepository,
    DownloadTokenRepository,
    OrderRepository,
    WebhookEventRepository,
)
from commerce.repositories.rate_limits import RateLimitRepository
from tests.support.threads import run_together

pytestmark = pytest.mark.emulators
NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def order(session_id: str = "cs_test_1", state: OrderState = OrderState.PENDING) -> Order:
    return Order(
        id=session_id,
        state=state,
        created_at=NOW,
        updated_at=NOW,
        amount_total=4900,
        currency="eur",
        payment_intent_id="pi_1",
    )


def test_round_trip_keeps_types(firestore_db):
    repo = OrderRepository(firestore_db)
    repo.create(order())
    loaded = repo.get("cs_test_1")
    assert loaded == order()
    assert loaded.state is OrderState.PENDING
    assert repo.by_payment_intent("pi_1") == loaded
    assert repo.get("cs_missing") is None


def test_create_if_absent_conflicts_on_an_existing_id(firestore_db):
    repo = WebhookEventRepository(firestore_db)
    record = WebhookEventRecord(
        id="evt_1", type="checkout.session.completed", received_at=NOW, outcome="fulfilled"
    )
    repo.create(record)
    with pytest.raises(AlreadyExists):
        repo.create(record.model_copy(update={"outcome": "other"}))
    assert repo.get("evt_1").outcome == "fulfilled"


def test_create_inside_a_transaction_fails_the_commit_on_an_existing_id(firestore_db):
    repo = OrderRepository(firestore_db)
    repo.create(order())

    def write(tx):
        repo.create(order(state=OrderState.PAID), tx)

    with pytest.raises(Exception, match=r"(?i)exist"):
        run_transaction(firestore_db, write)
    assert repo.get("cs_test_1").state is OrderState.PENDING


def test_download_grants_are_keyed_by_token_hash_and_hold_no_token(firestore_db):
    repo = DownloadTokenRepository(firestore_db)
    token = generate_token()
    grant = DownloadGrant.issue(
        token=token,
        token_id="tid1",
        order_id="cs_1",
        license_id="lic",
        channel="stable",
        now=NOW,
        ttl=timedelta(hours=1),
        max_redemptions=2,
    )
    repo.create(grant)
    snapshot = firestore_db.collection("download_tokens").document(grant.token_hash).get()
    assert snapshot.exists
    assert token not in str(snapshot.to_dict())
    assert repo.get(grant.token_hash) == grant
    assert repo.by_order("cs_1") == [grant]


def test_read_then_write_under_two_concurrent_writers_has_exactly_one_winner(firestore_db):
    repo = OrderRepository(firestore_db)
    repo.create(order())
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def pay(name: str) -> None:
        attempts = 0

        def work(tx):
            nonlocal attempts
            attempts += 1
            current = repo.get("cs_test_1", tx)
            if attempts == 1:
                barrier.wait(timeout=10)  # both have read before either writes
            if current.state is not OrderState.PENDING:
                return "lost"
            repo.update("cs_test_1", {"state": OrderState.PAID, "last_event_id": name}, tx)
            return "won"

        outcomes.append(run_transaction(firestore_db, work))

    run_together(pay, [(f"evt_{i}",) for i in range(2)], join_timeout=60)
    assert sorted(outcomes) == ["lost", "won"]
    assert repo.get("cs_test_1").state is OrderState.PAID


def test_audit_entries_are_appended_and_read_back_in_order(firestore_db):
    repo = AuditLogRepository(firestore_db)
    repo.append(AuditEntry(action="order.paid", at=NOW, order_id="cs_1"))
    repo.append(
        AuditEntry(
            action="order.fulfilled",
            at=NOW + timedelta(seconds=1),
            order_id="cs_1",
            details={"key_hint": "ABCD"},
        )
    )
    assert [e.action for e in repo.for_order("cs_1")] == ["order.paid", "order.fulfilled"]


def test_rate_limit_counts_per_window_and_says_when_to_retry(firestore_db):
    repo = RateLimitRepository(firestore_db)
    at = datetime(2026, 3, 1, 9, 30, 10, tzinfo=UTC)
    decisions = [repo.hit("net:1", limit=2, window_seconds=60, now=at) for _ in range(3)]
    assert [d.allowed for d in decisions] == [True, True, False]
    assert decisions[2].retry_after_seconds == 50
    assert repo.hit("net:2", limit=2, window_seconds=60, now=at).allowed
    assert repo.hit("net:1", limit=2, window_seconds=60, now=at + timedelta(seconds=50)).allowed


def test_emulator_is_reset_between_tests(firestore_db):
    assert OrderRepository(firestore_db).get("cs_test_1") is None
