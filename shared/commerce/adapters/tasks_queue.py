"""Cloud Tasks implementation of the `EmailQueue` and `ResendQueue` ports.

One task per e-mail job: an HTTP POST of `{"job_id": ...}` (ids only, never a key or
token) to the `send_email` worker, OIDC-signed with the invoker service account in
Google Cloud. The task name is derived from the job id so a repeated enqueue of the
same attempt is refused by Cloud Tasks (AlreadyExists counts as success). Cloud Tasks
keeps refusing a used name for about an hour after the task ran, so re-enqueues (the
sweeper, `emails resend`) pass a new `attempt` which becomes a name suffix.

A re-send request is a task of its own kind to the same worker: `{"resend": {...}}`
(`commerce.email_queue.ResendTask`: a customer id, never an address), named after the
customer and the collapse window, so repeats within a window are one task.

Locally the tasks emulator is reached over an insecure gRPC channel; it sends no OIDC
header and does not de-duplicate names, which is why the worker is idempotent itself.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any

from commerce.deadlines import call_timeout
from commerce.email_queue import ResendTask
from commerce.errors import ConfigurationError
from commerce.logs import get_logger
from commerce.settings import Settings

if TYPE_CHECKING:
    from google.cloud.tasks_v2 import CloudTasksClient

# An enqueue runs after the commit; on failure the job stays pending for the sweeper,
# so a slow queue must not hold the request (the library would allow 20 s).
ENQUEUE_TIMEOUT_SECONDS = 5.0
_log = get_logger("commerce.delivery.tasks")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def task_id_for(job_id: str, attempt: int = 0) -> str:
    """`email-<job id>` for the first enqueue, `email-<job id>-r<attempt>` after."""
    base = "email-" + _UNSAFE.sub("-", job_id)
    return base if attempt <= 0 else f"{base}-r{attempt}"


def task_body(job_id: str) -> bytes:
    return json.dumps({"job_id": job_id}, separators=(",", ":")).encode()


def resend_task_id(task: ResendTask) -> str:
    """`resend-<hash of customer id and window>`: repeats within a window collapse."""
    digest = hashlib.sha256(f"{task.customer_id}:{task.window}".encode()).hexdigest()
    return "resend-" + digest[:40]


def resend_task_body(task: ResendTask) -> bytes:
    return json.dumps(
        {"resend": task.model_dump(mode="json")}, separators=(",", ":"), sort_keys=True
    ).encode()


class CloudTasksEmailQueue:
    def __init__(self, settings: Settings, client: CloudTasksClient | None = None) -> None:
        self.settings = settings
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> CloudTasksClient:
        with self._lock:
            if self._client is None:
                self._client = new_tasks_client(self.settings)
            return self._client

    @property
    def queue_path(self) -> str:
        s = self.settings
        return f"projects/{s.gcp_project}/locations/{s.tasks_location}/queues/{s.tasks_queue}"

    def build_task(
        self, job_id: str, attempt: int = 0, at: datetime | None = None
    ) -> dict[str, Any]:
        task = self._task(task_id_for(job_id, attempt), task_body(job_id))
        if at is not None:  # a scheduled retry: Cloud Tasks (and the emulator) wait
            task["schedule_time"] = at
        return task

    def build_resend_task(self, task: ResendTask) -> dict[str, Any]:
        return self._task(resend_task_id(task), resend_task_body(task))

    def _task(self, task_id: str, body: bytes) -> dict[str, Any]:
        s = self.settings
        if not s.email_worker_url:
            raise ConfigurationError("EMAIL_WORKER_URL is not set; e-mail jobs cannot be queued")
        http_request: dict[str, Any] = {
            "http_method": "POST",
            "url": s.email_worker_url,
            "headers": {"Content-Type": "application/json"},
            "body": body,
        }
        if not s.tasks_emulator_host:
            if not s.tasks_invoker_service_account:
                raise ConfigurationError(
                    "TASKS_INVOKER_SERVICE_ACCOUNT is not set; the worker would be unauthenticated"
                )
            http_request["oidc_token"] = {
                "service_account_email": s.tasks_invoker_service_account,
                "audience": s.email_worker_url,
            }
        return {"name": f"{self.queue_path}/tasks/{task_id}", "http_request": http_request}

    def enqueue(self, job_id: str, *, attempt: int = 0, at: datetime | None = None) -> None:
        from google.api_core import exceptions as gexc

        task = self.build_task(job_id, attempt, at)
        try:
            self.client.create_task(
                request={"parent": self.queue_path, "task": task},
                timeout=call_timeout(ENQUEUE_TIMEOUT_SECONDS),
            )
        except gexc.AlreadyExists:
            # The same attempt was queued before: that task will deliver the job.
            _log.info(
                "e-mail task already queued",
                extra={"event": "email.enqueue_duplicate", "job_id": job_id},
            )
            return
        _log.info(
            "e-mail task queued",
            extra={
                "event": "email.enqueued",
                "job_id": job_id,
                "attempt": attempt,
                "at": at.isoformat() if at else None,
            },
        )

    def enqueue_resend(self, task: ResendTask) -> None:
        from google.api_core import exceptions as gexc

        built = self.build_resend_task(task)
        try:
            self.client.create_task(request={"parent": self.queue_path, "task": built})
        except gexc.AlreadyExists:
            # A request for this customer in this window is queued already: one e-mail.
            _log.info("re-send task already queued", extra={"event": "resend.enqueue_duplicate"})


def new_tasks_client(settings: Settings) -> CloudTasksClient:
    """The Tasks client: emulator over insecure gRPC locally, default credentials otherwise."""
    from google.cloud.tasks_v2 import CloudTasksClient

    if settings.tasks_emulator_host:
        import grpc
        from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

        channel = grpc.insecure_channel(settings.tasks_emulator_host)
        return CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
    return CloudTasksClient()
