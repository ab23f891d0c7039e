"""Records every Google Cloud operation the code performs, per function.

Recorded at the level of Google's client libraries, not the project's repositories, so
the record survives any refactoring of the storage code above them:

- Firestore and Cloud Tasks: a gRPC client interceptor on every channel handed to
  their GAPIC transports (`FirestoreGrpcTransport`, `CloudTasksGrpcTransport`)
  created while recording. Each RPC is decoded from its request message: which
  collection a BatchGetDocuments, RunQuery or Commit touches and how (a Commit write
  with `exists=false` creates, `exists=true` updates, no precondition upserts), which
  queue a CreateTask targets and which service account its OIDC token names.
- Cloud Storage: V4 URL signing (`Blob.generate_signed_url`, which in the cloud calls
  IAM signBlob as the function's own account) and every JSON/XML API request made
  through google-auth's `AuthorizedSession`.
- Secrets: every name asked of the `SecretSource` port adapters (`EnvSecrets` locally,
  `SecretManagerSecrets` in the cloud).

An operation is attributed to the function whose request is running: the contextvar
`current_function`, set around a test client call (`acting_as`) or by WSGI middleware
of a served function (`labelled`). Threads started while a function runs (background
counters, pools) carry its name, like the instance they would run in. Operations with
no function (test set-up) are kept apart and never count for a function.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest

current_function: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "current_function", default=None
)

_DOCUMENTS = re.compile(r"/documents/(?P<path>.+)$")
_STORAGE_OBJECT = re.compile(r"/(?:download/)?storage/v1/b/(?P<bucket>[^/]+)/o/(?P<object>[^?]+)")
_STORAGE_LIST = re.compile(r"/storage/v1/b/(?P<bucket>[^/]+)/o/?(?:\?|$)")
_STORAGE_UPLOAD = re.compile(r"/upload/storage/v1/b/(?P<bucket>[^/]+)/o")


@dataclass(frozen=True, order=True)
class Operation:
    """One kind of access: `action` (a key of infra/iam_permissions.toml) on `resource`
    (a collection, bucket, queue, service account email or secret name)."""

    action: str
    resource: str


@dataclass
class Recorder:
    by_function: dict[str, set[Operation]] = field(default_factory=dict)
    unattributed: set[Operation] = field(default_factory=set)
    # Every operation in order, with its function (None: set-up), for tests that count
    # operations rather than collect their kinds (tests/storefront/test_resend_same_work.py).
    sequence: list[tuple[str | None, Operation]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, action: str, resource: str) -> None:
        label = current_function.get() or getattr(threading.current_thread(), "_iam_function", None)
        operation = Operation(action, resource)
        with self.lock:
            self.sequence.append((label, operation))
            if label is None:
                self.unattributed.add(operation)
            else:
                self.by_function.setdefault(label, set()).add(operation)

    @contextlib.contextmanager
    def acting_as(self, function: str) -> Iterator[None]:
        token = current_function.set(function)
        try:
            yield
        finally:
            current_function.reset(token)

    def labelled(self, app: Any, function: str) -> Any:
        """Serve `app` (a Flask app) with every request attributed to `function`."""
        inner = app.wsgi_app

        def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            token = current_function.set(function)
            try:
                return list(inner(environ, start_response))
            finally:
                current_function.reset(token)

        app.wsgi_app = wsgi
        return app


# -- Firestore -----------------------------------------------------------------------------


def _collection(document_path: str) -> str:
    """`.../documents/orders/cs_1` -> `orders`; subcollections name their own id."""
    match = _DOCUMENTS.search(document_path)
    parts = (match["path"] if match else document_path).split("/")
    return parts[-2] if len(parts) >= 2 else parts[-1]


def _raw(message: Any) -> Any:
    """The protobuf of a proto-plus message (the transports hand proto-plus objects)."""
    pb = getattr(type(message), "pb", None)
    return pb(message) if callable(pb) else message


def _firestore_ops(method: str, request: Any) -> list[tuple[str, str]]:
    name = method.rsplit("/", 1)[-1]
    pb = _raw(request)
    ops: list[tuple[str, str]] = []
    begins = (
        hasattr(pb, "HasField")
        and "new_transaction" in {f.name for f in pb.DESCRIPTOR.fields}
        and pb.HasField("new_transaction")
    )
    if begins:
        ops.append(("firestore.begin_transaction", "(database)"))
    if name == "BatchGetDocuments":
        ops += [("firestore.get", _collection(path)) for path in pb.documents]
    elif name == "GetDocument":
        ops.append(("firestore.get", _collection(pb.name)))
    elif name == "RunQuery":
        ops += [("firestore.query", source.collection_id) for source in pb.structured_query.from_]
    elif name == "RunAggregationQuery":
        query = pb.structured_aggregation_query.structured_query
        ops += [("firestore.aggregate", source.collection_id) for source in query.from_]
    elif name == "ListDocuments":
        ops.append(("firestore.query", pb.collection_id))
    elif name == "BeginTransaction":
        ops.append(("firestore.begin_transaction", "(database)"))
    elif name == "Rollback":
        ops.append(("firestore.rollback", "(database)"))
    elif name == "Commit":
        if not pb.writes:
            ops.append(("firestore.commit_empty", "(database)"))
        for write in pb.writes:
            ops.append(_write_op(write))
    else:  # Listen, Write, BatchWrite, ListCollectionIds, ...: named as they are
        ops.append((f"firestore.{name}", "(database)"))
    return ops


def _write_op(write: Any) -> tuple[str, str]:
    kind = write.WhichOneof("operation")
    if kind == "delete":
        return "firestore.delete", _collection(write.delete)
    path = write.update.name if kind == "update" else write.transform.document
    if write.HasField("current_document"):
        condition = write.current_document.WhichOneof("condition_type")
        if condition == "exists":
            action = "firestore.create" if not write.current_document.exists else "firestore.update"
            return action, _collection(path)
        if condition == "update_time":
            return "firestore.update", _collection(path)
    return "firestore.upsert", _collection(path)


# -- Cloud Tasks ---------------------------------------------------------------------------


def _tasks_ops(method: str, request: Any) -> list[tuple[str, str]]:
    name = method.rsplit("/", 1)[-1]
    pb = _raw(request)
    if name != "CreateTask":
        return [(f"tasks.{name}", getattr(pb, "name", "") or getattr(pb, "parent", ""))]
    queue = pb.parent.rsplit("/", 1)[-1]
    ops = [("tasks.create", queue)]
    target = pb.task.http_request
    if target.HasField("oidc_token"):
        ops.append(("iam.act_as", target.oidc_token.service_account_email))
    if target.HasField("oauth_token"):
        ops.append(("iam.act_as", target.oauth_token.service_account_email))
    return ops


class _Interceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    def __init__(self, recorder: Recorder, decode: Callable[[str, Any], list[tuple[str, str]]]):
        self.recorder = recorder
        self.decode = decode

    def _note(self, details: Any, request: Any) -> None:
        for action, resource in self.decode(details.method, request):
            self.recorder.record(action, resource)

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        self._note(details, request)
        return continuation(details, request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        self._note(details, request)
        return continuation(details, request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        self._note(details, None)
        return continuation(details, requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        self._note(details, None)
        return continuation(details, requests)


def _stream_safe(decode: Callable[[str, Any], list[tuple[str, str]]]) -> Any:
    def run(method: str, request: Any) -> list[tuple[str, str]]:
        if request is None:  # a streaming request: named by its method only
            service = "firestore" if "firestore" in method else "tasks"
            return [(f"{service}.{method.rsplit('/', 1)[-1]}", "(stream)")]
        return decode(method, request)

    return run


def _intercept_transport(
    monkeypatch: pytest.MonkeyPatch, transport: type, interceptor: _Interceptor
) -> None:
    original = transport.__init__  # type: ignore[misc]

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        channel = kwargs.get("channel")
        if isinstance(channel, grpc.Channel):
            kwargs["channel"] = grpc.intercept_channel(channel, interceptor)
        original(self, *args, **kwargs)
        if not isinstance(channel, grpc.Channel):
            raise AssertionError(
                f"{transport.__name__} built without an explicit channel: its calls would "
                "escape the IAM recorder"
            )

    monkeypatch.setattr(transport, "__init__", init)


# -- Storage and secrets -------------------------------------------------------------------


def _storage_request_ops(method: str, url: str) -> list[tuple[str, str]]:
    path = url.split("://", 1)[-1].split("/", 1)[-1]
    path = "/" + path
    if match := _STORAGE_UPLOAD.search(path):
        return [("storage.objects.create", match["bucket"])]
    if match := _STORAGE_OBJECT.search(path):
        action = {"GET": "storage.objects.get", "DELETE": "storage.objects.delete"}.get(
            method.upper(), f"storage.objects.{method.lower()}"
        )
        return [(action, match["bucket"])]
    if match := _STORAGE_LIST.search(path):
        return [("storage.objects.list", match["bucket"])]
    return [(f"http.{method.upper()}", url.split("?", 1)[0])]


@contextlib.contextmanager
def recording(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    """Install the recorder for the duration (clients must be created inside it)."""
    import google.auth.transport.requests as auth_requests
    from google.cloud.firestore_v1.services.firestore.transports.grpc import (
        FirestoreGrpcTransport,
    )
    from google.cloud.storage.blob import Blob
    from google.cloud.tasks_v2.services.cloud_tasks.transports.grpc import (
        CloudTasksGrpcTransport,
    )

    from commerce.secrets import EnvSecrets, SecretManagerSecrets, SecretName

    recorder = Recorder()
    _intercept_transport(
        monkeypatch, FirestoreGrpcTransport, _Interceptor(recorder, _stream_safe(_firestore_ops))
    )
    _intercept_transport(
        monkeypatch, CloudTasksGrpcTransport, _Interceptor(recorder, _stream_safe(_tasks_ops))
    )

    sign = Blob.generate_signed_url

    def generate_signed_url(self: Blob, *args: Any, **kwargs: Any) -> str:
        # In the cloud: IAM signBlob as the function's own account, and the URL carries
        # that account's read access to the object (see the permissions table).
        recorder.record("storage.sign_url", self.bucket.name)
        return sign(self, *args, **kwargs)

    monkeypatch.setattr(Blob, "generate_signed_url", generate_signed_url)

    session_request = auth_requests.AuthorizedSession.request

    def request(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        for action, resource in _storage_request_ops(method, url):
            recorder.record(action, resource)
        return session_request(self, method, url, *args, **kwargs)

    monkeypatch.setattr(auth_requests.AuthorizedSession, "request", request)

    for adapter in (EnvSecrets, SecretManagerSecrets):
        original = adapter.get_optional

        def get_optional(
            self: Any, name: SecretName, _original: Callable[..., Any] = original
        ) -> Any:
            recorder.record("secrets.access", name.secret_manager_id)
            return _original(self, name)

        monkeypatch.setattr(adapter, "get_optional", get_optional)

    thread_init = threading.Thread.__init__

    def init(self: threading.Thread, *args: Any, **kwargs: Any) -> None:
        thread_init(self, *args, **kwargs)
        parent = current_function.get() or getattr(
            threading.current_thread(), "_iam_function", None
        )
        self._iam_function = parent  # type: ignore[attr-defined]

    monkeypatch.setattr(threading.Thread, "__init__", init)
    yield recorder
