"""The port through which committed e-mail jobs are handed to the worker.

The delivery feature provides the Cloud Tasks implementation (task name derived from
the job id). Enqueueing happens after the job's transaction commits; if it fails the
job stays `pending` and the sweeper re-enqueues it, so nothing is lost.
"""

from __future__ import annotations

from typing import Protocol


class EmailQueue(Protocol):
    def enqueue(self, job_id: str) -> None:
        """Hand job `job_id` to the e-mail worker. May raise; callers log and move on."""
        ...
