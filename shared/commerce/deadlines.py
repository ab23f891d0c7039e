"""A time budget per request for every Firestore call, so a store that does not answer
gives a quick 503 instead of a request held open for minutes.

The Firestore library's own deadlines are 60-300 s per call, retried on UNAVAILABLE
and DEADLINE_EXCEEDED for as long again; with the emulator killed or a port that
accepts and never answers, a webhook delivery was seen open for over 200 s. Here:

- `request_budget(seconds)` (set by `commerce.http.endpoint` and the license API)
  records when the current request must have finished;
- the Firestore client from `budgeted_firestore_client` sends every RPC through a
  gRPC interceptor that caps the RPC's deadline at what is left of that budget less a
  reserve for the library's back-off pause (FIRESTORE_RESERVE_SHARE), and once only
  the reserve is left raises `DependencyTimeout` (503 `dependency_timeout`). That
  error is no gRPC error, so the library's retry loop does not retry it: the answer
  comes within the budget, the last back-off pause included.

The other dependencies take their per-call timeout from `call_timeout(ceiling)`: the
call's own ceiling, or what is left of the budget when that is less (Cloud Storage in
`adapters/artifacts.py`, the Cloud Tasks enqueue in `adapters/tasks_queue.py`; the
Stripe client in `purchase/gateway.py` reads `budget_left()` per HTTP attempt).

The Cloud Tasks and Scheduler workers (`send_email`, `email_sweeper`, `reconcile`) run
under a longer budget of their own (`WORKER_BUDGET_SECONDS`, `RECONCILE_BUDGET_SECONDS`),
below their function timeouts, so a hung dependency ends the attempt with a 503 that the
caller retries rather than with the platform killing the instance.
Outside a request (CLI, scripts) there is no budget: the per-call ceilings and the
libraries' own deadlines apply.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, NamedTuple

from commerce.errors import TransientFailure

if TYPE_CHECKING:
    from google.cloud import firestore

_deadline: ContextVar[float | None] = ContextVar("commerce_request_deadline", default=None)
_budget: ContextVar[float | None] = ContextVar("commerce_request_budget", default=None)

# Share of the budget a Firestore call leaves unused: the library retries UNAVAILABLE
# and DEADLINE_EXCEEDED after a random pause of up to 0.1 s x 1.3^n, about 2 s once a
# dead store has been retried for 4 s. A call may start only while more than this share
# is left, and its deadline ends that share before the budget does, so the 503 comes
# within the budget, pause included (without it: 8.9 s for a 7 s budget against
# `make dev` with the emulator killed).
FIRESTORE_RESERVE_SHARE = 0.4


class DependencyTimeout(TransientFailure):
    code = "dependency_timeout"
    default_detail = "A service the shop depends on did not answer in time; please retry."


@contextmanager
def request_budget(seconds: float | None) -> Iterator[None]:
    """Within this block every Firestore call must finish `seconds` from now."""
    token = _deadline.set(None if seconds is None else time.monotonic() + seconds)
    budget_token = _budget.set(seconds)
    try:
        yield
    finally:
        _budget.reset(budget_token)
        _deadline.reset(token)


@contextmanager
def leaving(share: float) -> Iterator[None]:
    """Within this block the request's budget ends `share` of it early, for a call made
    inside a transaction: the commit that follows the call still finds its time (the
    Stripe lookup of a paid session, `purchase.verification`). After the block the
    budget is what it was. Without a budget (CLI) nothing changes."""
    deadline = _deadline.get()
    budget = _budget.get()
    if deadline is None or budget is None:
        yield
        return
    token = _deadline.set(deadline - share * budget)
    try:
        yield
    finally:
        _deadline.reset(token)


def budget_left() -> float | None:
    """Seconds left of the current request's budget, 0 once spent (None: no budget)."""
    deadline = _deadline.get()
    if deadline is None:
        return None
    return max(0.0, deadline - time.monotonic())


def remaining_budget() -> float | None:
    """Seconds left of the current request's budget (None: no budget); raises
    DependencyTimeout once it is spent."""
    remaining = budget_left()
    if remaining is not None and remaining <= 0:
        raise DependencyTimeout()
    return remaining


def firestore_call_timeout(requested: float | None) -> float | None:
    """The deadline of one Firestore RPC: `requested`, capped at what is left of the
    budget less its reserve (FIRESTORE_RESERVE_SHARE); raises DependencyTimeout when
    only the reserve is left (None: no budget, the library's deadline applies)."""
    remaining = remaining_budget()
    budget = _budget.get()
    if remaining is None or budget is None:
        return requested
    usable = remaining - budget * FIRESTORE_RESERVE_SHARE
    if usable <= 0:
        raise DependencyTimeout()
    return usable if requested is None else min(requested, usable)


def call_timeout(ceiling: float) -> float:
    """The timeout of one call to a dependency: `ceiling`, or what is left of the
    request's budget when that is less; raises DependencyTimeout once it is spent."""
    remaining = remaining_budget()
    return ceiling if remaining is None else min(ceiling, remaining)


class _CallDetails(NamedTuple):
    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: Any
    compression: Any


def budgeted_firestore_client(project: str) -> firestore.Client:
    client: firestore.Client = _client_class()(project=project)
    return client


@functools.cache
def _client_class() -> Any:
    """Built on first use: grpc and the Firestore library stay out of the functions'
    import time (functions/main.py imports this module through commerce.http)."""
    import grpc
    from google.cloud import firestore
    from google.cloud.firestore_v1.services.firestore import client as firestore_client
    from google.cloud.firestore_v1.services.firestore.transports.grpc import (
        FirestoreGrpcTransport,
    )

    class Details(_CallDetails, grpc.ClientCallDetails):  # type: ignore[misc]
        pass

    def within_budget(details: Any) -> Any:
        if _deadline.get() is None:
            return details
        timeout = firestore_call_timeout(details.timeout)
        return Details(
            details.method,
            timeout,
            details.metadata,
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    class BudgetInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):  # type: ignore[misc]
        def intercept_unary_unary(
            self, continuation: Callable[..., Any], details: Any, request: Any
        ) -> Any:
            return continuation(within_budget(details), request)

        def intercept_unary_stream(
            self, continuation: Callable[..., Any], details: Any, request: Any
        ) -> Any:
            return continuation(within_budget(details), request)

    interceptor = BudgetInterceptor()
    api_lock = threading.Lock()

    # gRPC Python runs a server-streaming call (BatchGetDocuments, RunQuery) with a thread
    # of its own, started for the call when none is running: measured on the webhook
    # (docs/performance.md), a quarter of a delivery's process CPU and about 2 ms of its
    # time. With this documented channel option the thread that reads the stream drives
    # it; every read here is consumed by the thread that started it.
    single_threaded = (grpc.experimental.ChannelOptions.SingleThreadedUnaryStream, 1)

    class BudgetedTransport(FirestoreGrpcTransport):
        @classmethod
        def create_channel(cls, *args: Any, **kwargs: Any) -> Any:
            kwargs["options"] = [*kwargs.get("options", ()), single_threaded]
            return grpc.intercept_channel(super().create_channel(*args, **kwargs), interceptor)

    class BudgetedClient(firestore.Client):
        """`firestore.Client` whose gRPC channel (Google's or the emulator's) carries the
        budget interceptor; the two hooks are the library's own channel factories."""

        @property
        def _firestore_api(self) -> Any:
            # Created once: unguarded, threads of a fresh instance each built a channel
            # and all but one were dropped, and a dropped channel cancels the
            # single-threaded streams still reading on it ("Channel deallocated").
            with api_lock:
                return self._firestore_api_helper(
                    BudgetedTransport, firestore_client.FirestoreClient, firestore_client
                )

        def _emulator_channel(self, transport: Any) -> Any:
            """The library's emulator channel (insecure, its placeholder token, no message
            size limit) with the single-threaded option."""
            options = [
                ("Authorization", "Bearer owner"),
                ("grpc.max_send_message_length", -1),
                ("grpc.max_receive_message_length", -1),
                single_threaded,
            ]
            channel = grpc.insecure_channel(self._emulator_host, options=options)
            return grpc.intercept_channel(channel, interceptor)

    return BudgetedClient
