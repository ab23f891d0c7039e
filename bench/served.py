"""The functions as the local stack serves them, for benchmarks.

`local_stack()` starts what `make dev` starts before the functions (Google's Firestore
emulator, the storage and tasks emulators, maildev, the Stripe double, then the set-up
steps: catalog and sample release), on free ports, through `emulators.stack.LocalStack`
in test mode. `serve()` then starts functions as HTTP servers on loopback the way the
stack does (`emulators.function_server`: functions-framework's app under gunicorn), or,
with `counted=True`, through `python -m bench.served`, which is the same server plus a
gRPC interceptor on the function's Firestore and Cloud Tasks channels:

- Firestore: RPCs by method; documents asked for by batch gets (found or missing: both
  are billed as reads); documents returned by queries (a query that returns nothing is
  billed one read, counted as such in `billed_reads`); writes and deletes in commits;
  transactions begun (a BeginTransaction call or a read carrying `new_transaction`).
- Cloud Tasks: tasks created.
- Every committed write's document path with its time, for the per-document write rate.

The counts are read with `GET /__bench__/operations` on the function's own port (answered
before the function sees the request), so they come from the process that did the work,
background threads included (e.g. the deferred rate-limit counters).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OPERATIONS_PATH = "/__bench__/operations"


# -- in the function's process ---------------------------------------------------------------


class Tally:
    """What one function process asked of Firestore and Cloud Tasks."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.writes_at: defaultdict[str, list[float]] = defaultdict(list)

    def add(self, what: str, n: int = 1) -> None:
        with self.lock:
            self.counts[what] += n

    def wrote(self, path: str) -> None:
        now = time.monotonic()
        with self.lock:
            self.writes_at[path].append(now)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "counts": {**self.counts, "cpu_seconds": time.process_time()},
                "writes_at": {path: list(times) for path, times in self.writes_at.items()},
            }


def _raw(message: Any) -> Any:
    pb = getattr(type(message), "pb", None)
    return pb(message) if callable(pb) else message


def _document(path: str) -> str:
    return path.split("/documents/", 1)[-1]


def _note_request(tally: Tally, method: str, request: Any) -> None:
    name = method.rsplit("/", 1)[-1]
    if "google.cloud.tasks" in method:
        tally.add(f"tasks.{name}")
        return
    tally.add(f"firestore.rpc.{name}")
    pb = _raw(request)
    if pb is None:
        return
    fields = {f.name for f in pb.DESCRIPTOR.fields}
    if name == "BeginTransaction" or (
        "new_transaction" in fields and pb.HasField("new_transaction")
    ):
        tally.add("firestore.transactions")
    if name == "BatchGetDocuments":
        tally.add("firestore.reads", len(pb.documents))
        tally.add("firestore.billed_reads", len(pb.documents))
    elif name == "GetDocument":
        tally.add("firestore.reads")
        tally.add("firestore.billed_reads")
    elif name == "RunQuery":
        tally.add("firestore.queries")
    elif name == "Commit":
        tally.add("firestore.commits")
        for write in pb.writes:
            kind = write.WhichOneof("operation")
            if kind == "delete":
                tally.add("firestore.deletes")
                tally.wrote(_document(write.delete))
            else:
                tally.add("firestore.writes")
                path = write.update.name if kind == "update" else write.transform.document
                tally.wrote(_document(path))
    elif name == "Rollback":
        tally.add("firestore.rollbacks")


class _CountedQuery:
    """A RunQuery response stream that counts the documents it yields."""

    def __init__(self, inner: Any, tally: Tally) -> None:
        self._inner = inner
        self._tally = tally
        self._found = 0

    def __iter__(self) -> _CountedQuery:
        return self

    def __next__(self) -> Any:
        try:
            item = next(self._inner)
        except StopIteration:
            self._tally.add("firestore.billed_reads", max(self._found, 1) - self._found)
            raise
        if _raw(item).HasField("document"):
            self._found += 1
            self._tally.add("firestore.reads")
            self._tally.add("firestore.billed_reads")
        return item

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def install_counting(tally: Tally) -> None:
    """Every Firestore and Cloud Tasks gRPC channel created from now on is counted."""
    import grpc
    from google.cloud.firestore_v1.services.firestore.transports.grpc import (
        FirestoreGrpcTransport,
    )
    from google.cloud.tasks_v2.services.cloud_tasks.transports.grpc import (
        CloudTasksGrpcTransport,
    )

    class Interceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
        def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
            _note_request(tally, details.method, request)
            return continuation(details, request)

        def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
            _note_request(tally, details.method, request)
            responses = continuation(details, request)
            if details.method.endswith("/RunQuery"):
                return _CountedQuery(responses, tally)
            return responses

    for transport in (FirestoreGrpcTransport, CloudTasksGrpcTransport):
        original = transport.__init__

        def init(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> None:
            channel = kwargs.get("channel")
            if not isinstance(channel, grpc.Channel):
                raise RuntimeError("a transport without an explicit channel would not be counted")
            kwargs["channel"] = grpc.intercept_channel(channel, Interceptor())
            _original(self, *args, **kwargs)

        transport.__init__ = init  # type: ignore[method-assign]


def counted_app(target: str, source: str, tally: Tally) -> Any:
    """functions-framework's app for `target`, answering OPERATIONS_PATH itself."""
    from functions_framework import create_app

    app = create_app(target, source)
    inner = app.wsgi_app

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") == OPERATIONS_PATH:
            body = json.dumps(tally.snapshot()).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        tally.add("requests")
        return inner(environ, start_response)

    app.wsgi_app = wsgi
    return app


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m bench.served --target NAME --source functions/main.py --port P`."""
    from functions_framework._http import create_server

    from emulators.function_server import server_options

    parser = argparse.ArgumentParser(prog="python -m bench.served")
    parser.add_argument("--target", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    tally = Tally()
    install_counting(tally)
    # The same two calls as emulators.function_server, with the counted app.
    server = create_server(counted_app(args.target, args.source, tally), False, **server_options())
    server.server_class(server.app, args.host, args.port, server.debug, **server.options).run()


# -- in the benchmark's process --------------------------------------------------------------


def operations(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + OPERATIONS_PATH, timeout=30) as response:
        result: dict[str, Any] = json.loads(response.read())
        return result


def difference(after: Mapping[str, Any], before: Mapping[str, Any]) -> dict[str, float]:
    """What happened between two snapshots of one process."""
    earlier = before["counts"]
    return {key: value - earlier.get(key, 0) for key, value in after["counts"].items()}


@contextmanager
def local_stack(overrides: Mapping[str, str] | None = None) -> Iterator[Any]:
    """The local stack without functions or storefront (free ports, test mode); the
    emulator addresses are also put into this process's environment for its clients."""
    from emulators import stack

    with tempfile.TemporaryDirectory(prefix="genx-bench-") as tmp:
        local = stack.LocalStack(
            stack.free_ports(stack.function_names()),
            local_dir=Path(tmp) / ".local",
            mode="test",
            env_overrides=dict(overrides or {}),
        )
        local.start(functions=False, storefront=False)
        saved = dict(os.environ)
        try:
            for name in ("FIRESTORE_EMULATOR_HOST", "STORAGE_EMULATOR_HOST"):
                os.environ[name] = local.env[name]
            yield local
        finally:
            os.environ.clear()
            os.environ.update(saved)
            local.stop()


def container_for(env: Mapping[str, str]) -> Any:
    """A composition root over the stack's settings and local secrets, for seeding."""
    from commerce.bootstrap import Container
    from commerce.clock import SystemClock
    from commerce.secrets import EnvSecrets
    from commerce.settings import Settings, settings_values

    settings = Settings.model_validate(settings_values(env))
    return Container(settings, clock=SystemClock(), secrets=EnvSecrets(dict(env)))


@contextmanager
def serve(
    local: Any, names: Sequence[str], *, counted: bool = False, extra_env: Mapping[str, str] = {}
) -> Iterator[dict[str, str]]:
    """Start `names` on the stack's ports (their URLs are already in its environment)."""
    from emulators import stack

    env = {**local.env, **extra_env}
    specs = []
    for name in names:
        spec = stack.function_spec(name, local.ports.functions[name], env, ROOT)
        if counted:
            python = spec.argv[0]
            argv = [python, "-m", "bench.served", *spec.argv[3:]]
            spec = dataclasses.replace(spec, argv=argv)
        specs.append(spec)
    running = [stack.start_service(spec, local.log_dir) for spec in specs]
    try:
        stack.wait_ready(running)
        yield {spec.name: spec.url for spec in specs}
    finally:
        stack.stop_services(running)


if __name__ == "__main__":
    sys.exit(main())
