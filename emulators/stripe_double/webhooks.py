"""Signed webhook delivery: Stripe's signature scheme, one POST, and a timer thread."""

from __future__ import annotations

import hashlib
import heapq
import hmac
import itertools
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable

log = logging.getLogger("stripe_double.webhooks")

USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"


def signature_header(payload: str, secret: str, timestamp: int | None = None) -> str:
    """`t=...,v1=...`: HMAC-SHA256 of `{t}.{payload}`, as `stripe.WebhookSignature` builds it."""
    signed_at = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(
        secret.encode("utf-8"), f"{signed_at}.{payload}".encode(), hashlib.sha256
    ).hexdigest()
    return f"t={signed_at},v1={digest}"


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # Stripe counts a redirect answer as a failed delivery; it does not follow it.
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects())


def post_event(
    url: str, payload: str, secret: str, timeout: float
) -> tuple[int | None, str | None]:
    """POST one signed event. Returns (HTTP status, None) or (None, connection error)."""
    request = urllib.request.Request(
        url,
        data=payload.encode("utf-8"),
        method="POST",
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            "Stripe-Signature": signature_header(payload, secret),
        },
    )
    try:
        with _opener.open(request, timeout=timeout) as response:
            response.read()
            return int(response.status), None
    except urllib.error.HTTPError as error:
        error.read()
        error.close()
        return int(error.code), None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return None, f"{type(error).__name__}: {reason}"


class Scheduler:
    """Runs callables at a due time on one background thread, in due order."""

    def __init__(self) -> None:
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._sequence = itertools.count()
        self._condition = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(
            target=self._run, name="stripe-double-scheduler", daemon=True
        )
        self._thread.start()

    def call_later(self, delay: float, action: Callable[[], None]) -> None:
        with self._condition:
            heapq.heappush(
                self._queue, (time.monotonic() + max(delay, 0.0), next(self._sequence), action)
            )
            self._condition.notify()

    def clear(self) -> None:
        with self._condition:
            self._queue.clear()

    def stop(self) -> None:
        with self._condition:
            self._stopped = True
            self._queue.clear()
            self._condition.notify()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._stopped:
                    if self._queue and self._queue[0][0] <= time.monotonic():
                        break
                    timeout = self._queue[0][0] - time.monotonic() if self._queue else None
                    self._condition.wait(timeout)
                if self._stopped:
                    return
                _due, _seq, action = heapq.heappop(self._queue)
            try:
                action()
            except Exception:  # one broken job must not stop deliveries
                log.exception("scheduled job failed")
