"""Refunds and lost disputes find the order's download grants by key, on Google's
Firestore emulator: the order lists its grants' ids (fulfillment and re-send add them
in the transaction that creates the grant), the transaction reads them by key (it
locks documents, not a query's range), an order written before the list existed has
its grants found by a query outside the transaction, and many refunds at once all
complete (a query inside each refund's transaction stalled the emulator for minutes:
docs/performance.md, "Launch day")."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from google.cloud import firestore

from commerce.domain.models import LicenseStatus
from commerce.domain.orders import OrderState
from commerce.domain.tokens import DownloadGrant
from commerce.email_queue import ResendTask
from commerce.grants import new_download_grant
from commerce.purchase.fulfillment import license_id_for
from commerce.purchase.schemas import Outcome
from commerce.repositories.collections import DownloadTokenRepository
from tests.purchase import stripe_events as se
from tests.purchase.conftest import deliver_until_accepted

BUYER = "buyer@example.com"


@pytest.fixture
def grant_queries(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """One entry per query of `download_tokens`: True when it ran inside a transaction."""
    seen: list[bool] = []
    original = DownloadTokenRepository.query

    def query(self: Any, filters: Any, *, limit: Any = None, tx: Any = None) -> Any:
        seen.append(tx is not None)
        return original(self, filters, limit=limit, tx=tx)

    monkeypatch.setattr(DownloadTokenRepository, "query", query)
    return seen


def fulfilled(container: Any, deliver: Any) -> dict[str, Any]:
    session = se.checkout_session(email=BUYER)
    assert deliver(se.event("checkout.session.completed", session)).outcome is Outcome.FULFILLED
    return session


def resend(container: Any) -> None:
    """The re-send worker's step for the buyer (fresh grants for entitled orders)."""
    task = ResendTask(customer_id=container.keys.customer_id_for(BUYER), window=0)
    assert container.resend_service.prepare(task) is not None


def grants_of(container: Any, session_id: str) -> list[DownloadGrant]:
    return container.download_tokens.by_order(session_id)


def refund(session: dict[str, Any]) -> dict[str, Any]:
    return se.event("charge.refunded", se.charge(session["payment_intent"], amount_refunded=4900))


def test_fulfillment_and_resend_list_each_grant_on_the_order(container, deliver):
    session = fulfilled(container, deliver)
    (first,) = grants_of(container, session["id"])
    assert container.orders.get(session["id"]).download_grant_ids == (first.token_hash,)

    resend(container)

    grants = grants_of(container, session["id"])
    assert len(grants) == 2
    listed = container.orders.get(session["id"]).download_grant_ids
    assert sorted(listed) == sorted(g.token_hash for g in grants)


def test_a_full_refund_revokes_the_listed_grants_read_by_key_not_by_query(
    container, deliver, grant_queries
):
    session = fulfilled(container, deliver)
    resend(container)
    grant_queries.clear()

    assert deliver(refund(session)).outcome is Outcome.REFUNDED

    assert grant_queries == []  # no query of the grants, in the transaction or before
    grants = grants_of(container, session["id"])
    assert len(grants) == 2
    assert all(g.revoked for g in grants)
    assert container.orders.get(session["id"]).state is OrderState.REFUNDED
    license_ = container.licenses.get(license_id_for(session["id"]))
    assert license_.status is LicenseStatus.REVOKED


def test_a_lost_dispute_revokes_the_listed_grants_read_by_key(container, deliver, grant_queries):
    session = fulfilled(container, deliver)
    resend(container)
    intent = session["payment_intent"]
    deliver(se.event("charge.dispute.created", se.dispute(intent)))
    grant_queries.clear()

    closed = se.event("charge.dispute.closed", se.dispute(intent, status="lost"))
    assert deliver(closed).outcome is Outcome.REVOKED

    assert grant_queries == []
    grants = grants_of(container, session["id"])
    assert len(grants) == 2
    assert all(g.revoked for g in grants)


def as_written_before_the_list(container: Any, session_id: str) -> DownloadGrant:
    """Make the order look like one stored before orders listed their grants: the field
    is absent, and a second grant exists that only its `order_id` ties to the order (as
    an earlier re-send left it). Returns that grant."""
    container.db.collection("orders").document(session_id).update(
        {"download_grant_ids": firestore.DELETE_FIELD}
    )
    assert (
        "download_grant_ids"
        not in container.db.collection("orders").document(session_id).get().to_dict()
    )
    assert container.orders.get(session_id).download_grant_ids is None
    order = container.orders.get(session_id)
    extra = new_download_grant(
        container.keys,
        order_id=session_id,
        license_id=license_id_for(session_id),
        channel="stable",
        now=container.clock.now(),
        ttl=timedelta(hours=72),
        max_redemptions=5,
    )
    container.download_tokens.put(extra)
    assert order.download_grant_ids is None
    return extra


def test_an_order_written_before_the_list_has_every_grant_revoked_found_outside_the_transaction(
    container, deliver, grant_queries
):
    session = fulfilled(container, deliver)
    extra = as_written_before_the_list(container, session["id"])
    grant_queries.clear()

    assert deliver(refund(session)).outcome is Outcome.REFUNDED

    assert grant_queries == [False]  # one query, outside any transaction
    grants = grants_of(container, session["id"])
    assert {g.token_hash for g in grants} >= {extra.token_hash}
    assert len(grants) == 2
    assert all(g.revoked for g in grants)
    assert container.orders.get(session["id"]).state is OrderState.REFUNDED


def test_a_resend_to_an_order_written_before_the_list_leaves_it_to_the_fallback(container, deliver):
    """A partial list would hide the older grants from the refund: the order keeps no
    list, and the refund's query outside the transaction finds all three grants."""
    session = fulfilled(container, deliver)
    as_written_before_the_list(container, session["id"])

    resend(container)

    assert container.orders.get(session["id"]).download_grant_ids is None
    assert deliver(refund(session)).outcome is Outcome.REFUNDED
    grants = grants_of(container, session["id"])
    assert len(grants) == 3
    assert all(g.revoked for g in grants)


def test_a_grant_listed_after_the_refund_looked_is_read_by_key_in_the_transaction(
    container, deliver, grant_queries
):
    """A re-send that commits between the refund's look at the order and its
    transaction: the transaction's order names the new grant, which is read (by key)
    and revoked too."""
    session = fulfilled(container, deliver)
    fulfillment = container.fulfillment
    look = fulfillment._grant_candidates

    def look_then_resend(session_id: str) -> frozenset[str]:
        seen = look(session_id)
        resend(container)  # lands before the refund's transaction begins
        return seen

    fulfillment._grant_candidates = look_then_resend  # type: ignore[method-assign]
    grant_queries.clear()

    assert deliver(refund(session)).outcome is Outcome.REFUNDED

    assert grant_queries == []
    grants = grants_of(container, session["id"])
    assert len(grants) == 2
    assert all(g.revoked for g in grants)


def test_forty_refunds_from_sixteen_threads_all_complete_with_every_grant_revoked(
    container, deliver
):
    """The launch benchmark's shape (2 % of 2,000 purchases refunded, concurrency 16),
    half of the orders written before the list. Nothing timed: every refund must be
    applied once, and every order, license and grant end as a refund leaves them."""
    sessions = [fulfilled(container, deliver) for _ in range(40)]
    legacy = {session["id"] for session in sessions[::2]}
    for session_id in legacy:
        as_written_before_the_list(container, session_id)

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda s: deliver_until_accepted(container, refund(s)), sessions))

    assert [result.outcome for result, _ in results] == [Outcome.REFUNDED] * 40
    for session in sessions:
        assert container.orders.get(session["id"]).state is OrderState.REFUNDED
        license_ = container.licenses.get(license_id_for(session["id"]))
        assert license_.status is LicenseStatus.REVOKED
        grants = grants_of(container, session["id"])
        assert len(grants) == (2 if session["id"] in legacy else 1)
        assert all(g.revoked for g in grants)
    entries = list(container.db.collection("webhook_events").stream())
    assert sum(1 for entry in entries if entry.get("type") == "charge.refunded") == 40
