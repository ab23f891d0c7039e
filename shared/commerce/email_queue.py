"""The ports through which work is handed to the e-mail worker.

`EmailQueue`: committed e-mail jobs. The Cloud Tasks implementation
(`commerce.adapters.tasks_queue`) derives the task name from the job id. Enqueueing
happens after the job's transaction commits; if it fails the job stays `pending` and
the sweeper re-enqueues it, so nothing is lost.

`ResendQueue`: re-send requests (`ResendTask`), queued by the storefront's
`resend_links` before anything is looked up, so the request path does the same work
for a buyer and for a stranger; the worker looks the address's customer up and sends.
"""

from __future__ import annotations

import re
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

_LOCALE = re.compile(r"^[a-z]{2}$")


class ResendTask(BaseModel):
    """A re-send request as queued: the customer id (a keyed hash of the address,
    never the address), the asked locale and the collapse window it belongs to (the
    task name and the e-mail job id derive from customer and window, so repeats
    within one window are one task and one job)."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    customer_id: str = Field(pattern=r"^cus_[0-9a-f]{32}$")
    locale: str | None = Field(default=None, pattern=_LOCALE.pattern)
    window: int = Field(ge=0)  # Unix seconds of the collapse window's start


class EmailQueue(Protocol):
    def enqueue(self, job_id: str) -> None:
        """Hand job `job_id` to the e-mail worker. May raise; callers log and move on."""
        ...


class ResendQueue(Protocol):
    def enqueue_resend(self, task: ResendTask) -> None:
        """Queue a re-send request; a repeat of the same (customer, window) is the same
        task (AlreadyExists counts as queued). Raises when the queue is unreachable."""
        ...
