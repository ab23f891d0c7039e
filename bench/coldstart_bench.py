"""Cold start of every function: process start to its first real answer.

Each function is served as the local stack serves it (`python -m
emulators.function_server`: functions-framework's app under gunicorn, on 127.0.0.1) in
a fresh process, against the local stack's emulators and Stripe double
(`bench.served.local_stack`), and polled until it answers a real first request: a
checkout against the Stripe double, a signed paid session through the webhook, a real
redemption, a license validation, and so on (CASES). Baseline, same run, alternating
with the function: a bare function served the same way whose module imports, at load
time, pydantic and the Google clients that function's first request loads (the owner's
decision on issue 15). Where the function also needs a non-Google client library
(stripe, sendgrid) a second baseline imports that too, and its ratio is shown beside.
The clients a function's first request loads are found by a probe, not declared: a
fresh interpreter runs the same first request through functions-framework's test
client and reports which of them are in `sys.modules`. The median of N runs is
reported with the range of the per-run ratios. Target: each function within 1.2x of
its baseline.

Compiled bytecode, equal for both sides: every start reads `.pyc` files from one
bytecode cache (PYTHONPYCACHEPREFIX in a temporary directory), and one unmeasured start
of each side per function writes it first (PYTHONDONTWRITEBYTECODE, set in this
environment, would make every start compile main.py and the `commerce` package).

    .venv/bin/python -m bench.coldstart_bench [--runs 7] [--functions download,...] [--write-docs]

Every process is stopped by its PID.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import write_section
from bench.served import container_for, local_stack
from commerce.domain.orders import OrderState
from emulators.stack import free_port, function_names
from tests.purchase import stripe_events as se
from tests.support import factories

ROOT = Path(__file__).resolve().parents[1]
MAIN = ROOT / "functions" / "main.py"
DOCS = ROOT / "docs" / "performance.md"
HEADING = "## Cold start"
TARGET = 1.2
GOOGLE_CLIENTS = (
    "google.cloud.firestore",
    "google.cloud.storage",
    "google.cloud.tasks_v2",
    "google.cloud.secretmanager",
)
OTHER_CLIENTS = ("stripe", "sendgrid")
FINGERPRINT = "cold-start-machine-" + "ab" * 16

# Written into docs/performance.md under the table; the table is the latest run.
HISTORY = """\
**Issue 15, session 7 (2026-12-02).** What changed:

- **Checkout builds 4 pydantic models instead of 12.** The rate-limit counter's
  module imported `domain.models` for the documents' base class, and the repositories
  package imported every repository: checkout, which stores nothing but rate-limit
  counters before Stripe, built every document model (orders, licenses, e-mail jobs,
  audit entries...) at its cold start. The base class has its own module
  (`domain.documents`) and the package imports nothing (callers import the module).
- **Reconcile builds the webhook's steps only when something needs repair.** It used
  to build the fulfilment path, the paid-session verifier and the webhook service (and
  with them the audit, key, grant and Cloud Tasks modules) before listing anything. A
  run that finds every listed session settled and no refund or dispute, the usual run
  and the measured first request, now never loads them (tests/service/
  test_reconciliation.py counts the builds; a fresh interpreter shows the module
  loads none of them). Its baseline lost `google.cloud.tasks_v2` with it (the bench's
  baseline imports the Google clients the first request loads), so its ratio is
  against a lighter baseline than session 6's.
- Tried and dropped: loading the Stripe client (checkout) and email-validator (webhook)
  on a background thread while the request waits on the network. Measured in-process
  over three starts each, both raised the request's CPU (checkout 58-70 to 67-90 ms,
  webhook 112-127 to 126-150 ms) and its wall time; the threads competed for the
  interpreter with the request instead of filling its waits.

**Issue 15, session 6 (2026-12-01).** What changed:

- **The Stripe adapter no longer builds the library's typed objects.** Every call in
  `commerce.purchase.gateway` goes through `StripeClient.raw_request` (the official
  client's transport, authentication, retries, idempotency keys and errors) and hands
  on the JSON Stripe sent. The typed services (`client.v1...`) turned each answer into
  its resource class, and the first answer of a kind imported that class's module
  (`stripe.checkout._session` 10 ms of CPU; refunds, disputes, charges and
  PaymentIntents 23 ms together) only for `to_dict()` to turn it back into JSON. Lists
  page with `starting_after`, as `auto_paging_iter` did (tests/purchase/
  test_functions.py: every page read against the double; no resource class module in
  a fresh interpreter after every kind of call).
- The checkout and reconcile bodies (pydantic models) moved to `purchase.requests`, so
  the webhook, which parses neither, no longer builds them.
- Reconcile reads the orders of a page of listed paid sessions in one batch (one round
  trip per 100 sessions instead of one per session), and tries an object whose attempt
  failed transiently once more at the end of the run.
- **The first requests changed, to be the real ones.** Checkout's now sends what the
  storefront sends on Buy (`site/assets/site.js` and the plain form: the language and
  a fresh click id). It used to send an e-mail address, which the storefront never
  does (Stripe's page asks the buyer), and that loaded email-validator (14 ms of CPU)
  on a path no buyer takes; API callers that prefill an address still pay it. The
  webhook's was a `checkout.session.completed` for a session Stripe never made: the
  function asked Stripe, got a 404 and recorded a rejection. It is now the double's own
  event for a session made there as checkout makes it and paid (`paid_sessions()`), so
  the measured start verifies the session with Stripe and fulfils it: a license, a
  link, an e-mail job, and the Cloud Tasks client for the e-mail (now in that
  function's baseline too, which imports the Google clients the first request loads).
  Reconcile's first request then lists those paid sessions with checkout's open ones
  and reads their orders, where before it listed only unpaid sessions and read
  nothing. The real webhook start is the heavier one, so that function's ratio is not
  comparable with session 5's.

**Issue 15, session 5 (2026-12-01).** What changed, and what the side columns show:

- **The cyclic garbage collector was the largest single part of both sides' cold
  start.** Counted with `gc.callbacks` on the CPU clock in served starts (order_status
  and stripe_webhook, three each, load average about 2 from other work): the bare
  baseline ran 2.3-2.7 full collections per start, 65-82 ms of CPU, and 28 ms of
  younger ones; the functions ran about three full collections. A full collection late
  in a start walks about 85,000 objects (an explicit `gc.collect()` right after a first
  answer took 35-52 ms) and finds 180-350 unreachable ones. `commerce.startup` now turns
  the collector off when main.py loads and, after the instance's first answer, moves
  what is alive to the permanent generation (`gc.freeze()`) and turns it back on: the
  `gc` documentation's recipe for a process that loads once and then forks, with the
  end of the cold start in place of the fork. Counted the same way, a function now runs
  no full collection before its answer; the 67 young collections per start left happen
  in functions-framework's own start-up before main.py loads (the baseline has them
  too). tests/unit/test_cold_start_imports.py checks that loading main.py turns the
  collector off and the first answer turns it back on, with the heap frozen. Trade-off:
  an instance's first request runs without the cyclic collector (reference counting
  still frees everything that is not a cycle), and the few hundred unreachable objects
  left from loading stay in memory.
- That change removes more CPU than the product's own imports and first-request work
  cost, so the target column now compares a function that manages its collector with
  a bare function that does not. The side column "baseline with the collector off until
  its answer" starts the bare function the same way: against it, the ratio is what the
  product's own code costs over the libraries. It is reported beside the target, not
  instead of it.
- download: the local stack's URL-signing key is loaded without OpenSSL's RSA
  consistency check (`commerce.adapters.artifacts.local_signing_credentials`): 32 ms of
  CPU at every local start, which the cloud never pays (it signs through IAM and loads
  no key; settings refuse a key file outside local). The signatures are byte-identical
  to those of google-auth's own loader (tests/delivery/test_local_signing.py).
- pydantic's plugin search is off (`PYDANTIC_DISABLE_PLUGINS`, set by
  `commerce.startup.begin` unless the operator set it): defining the first model read
  every installed distribution's entry points, 3 ms with the development tools
  installed (tests/unit/test_cold_start_imports.py).
- Side column "with one pydantic model in the baseline", for the question left to the
  owner in session 4: the baseline also defines `class Ping(BaseModel): n: int =
  Field(ge=0)`, which loads the field machinery pydantic defers until a model has a
  field (15 ms of CPU in-process) and builds a first schema with a constraint.

**Issue 15, session 4.** The owner decided the baseline: the same Google clients plus
pydantic. What changed:

- `Settings` is a plain frozen pydantic model that `load_settings()` feeds from the
  environment (same fields, validation and error messages naming the variable;
  tests/unit/test_settings.py unchanged and passing). pydantic-settings is no longer a
  dependency: importing it cost every function 47-104 ms of CPU on this machine (load
  average about 8); the Settings class now builds in 5-9 ms.
- The bench covers every function in emulators/ports.json (it stops if one has no first
  request), runs them as the local stack does (`emulators.function_server`) against the
  whole local stack, finds each function's clients with a probe instead of a declared
  list, reports each server's CPU time beside wall time, and imports pydantic's
  BaseModel in the baseline (`import pydantic` alone is lazy and loads almost nothing).
- `import stripe` no longer loads httpx, rich and pygments: stripe 16 picks its async
  transport at import and takes httpx when it is installed; httpx was a development-only
  package that nothing here used (the lock the bundle deploys has no httpx), and it
  imports its command line (rich, pygments) with itself. That was about 35 ms of CPU in
  every local start of checkout, stripe_webhook and reconcile that the cloud never paid.
  It is gone from requirements-dev.txt (an existing `.venv` keeps it until
  `.venv/bin/pip uninstall httpx`); `import stripe` now costs about 5 ms of CPU and
  creating the `StripeClient` 8 ms more. tests/unit/test_cold_start_imports.py fails
  when the functions load a package the lock lacks.
- email-validator is imported where an address is checked
  (`commerce.domain.email_address.check_address`): it compiles its RFC patterns at import
  (14 ms of CPU), which every function paid through the domain models. download,
  order_status, license_api, send_email, email_sweeper and reconcile no longer load it
  (checked for main.py and the domain models by tests/unit/test_cold_start_imports.py,
  and on the delivery functions' real first requests by
  tests/delivery/test_cold_start_imports.py); checkout, stripe_webhook and resend_links
  check an address on their first request and still do.
- The bench also reports the CPU of the server's process tree up to the first answer
  (read from /proc when the answer arrives): the span the target is about. The CPU to
  exit adds what runs after the answer (the webhook's e-mail enqueue, shutdown): a
  further 150-430 ms for either side in this session's runs.

Where the rest goes, after these changes (in-process, CPU clock: a fresh interpreter
imports the baseline's modules, then loads main.py through `create_app` and serves the
first request through the test client; load average 3.5-6, 2-4 repetitions each):

- Loading main.py: 25-35 ms for every function. 13 of them are pydantic's own:
  `from pydantic import BaseModel` (the baseline) does not load pydantic's field
  machinery (`pydantic.fields`, `pydantic.types`, `annotated_types`); defining the first
  model does. A one-field model defined after the baseline's imports costs 15 ms of
  CPU, a second one 0.4 ms, so any function that validates anything with pydantic pays
  it; the baseline as decided does not (for the owner to weigh; the baseline is
  unchanged). The settings module is 10 ms: the Settings class about 6 (75 fields,
  spread over pydantic's field collection and schema building, no hot spot; without
  `from __future__ import annotations` about 1 ms less), pydantic.networks for its URL
  fields 2; the log redaction patterns 3 ms.
- The first request: with its modules imported beforehand, each function's first
  request costs 11-17 ms of CPU (client, gRPC channel, the calls); the rest is imports:
  order_status 30-37 ms, email_sweeper 34-35, send_email 32-37, resend_links 40-43,
  license_api 44-53, reconcile 58-61, download 68-73, checkout 68-77, stripe_webhook
  77-82 ms (before these changes: 43-44, 45-48, 48-52, 49-51, 59-62, 102-106, 85-90,
  101-111, 111-121). Parts: the domain models module 8-11 ms, of which the eight model
  classes 6.4 ms (0.4-1.4 ms each), so splitting it per function would save at most
  3-4 ms (not done: it would touch 22 importing modules; `defer_build` measured no
  gain: 9.5-10.8 ms with it, 10.5-12.0 without); the repositories 7 ms; email-validator
  14 ms (checkout, stripe_webhook, resend_links); stripe 13 ms (checkout,
  stripe_webhook, reconcile); download's signing warm-up (a thread that loads the
  URL-signing credentials: about 30 ms of CPU locally for the key file's RSA check,
  overlapping the redemption's transaction; gone in session 5).
- Firestore's GAPIC layer is not a large part: after `import google.cloud.firestore`
  (the baseline), creating the client and its first API use (GAPIC client and gRPC
  channel) cost 2.6-3.4 ms of CPU. Garbage collection during the function's part: 3-5 ms.

Served (the bench, after these changes, 7 runs each, load average 3.8 before and 3.0
after, 19:19-19:22; not the table's run), the CPU of the server's process tree up to
the first answer was above the baseline's by 60 ms (order_status, email_sweeper), 70
(send_email), 80 (resend_links), 90 (license_api), 110 (stripe_webhook, reconcile) and
120 ms (checkout, download): 1.17-1.35x of 320-350 ms, close to the in-process sums
above (order_status 60 ms; checkout about 100). The target leaves about 65 ms. Wall
time in the same run: 1.25-1.40x (an earlier run at load average 7-15: CPU to the
answer 1.21-1.36x). Wall-time ratios on this machine moved by more than these amounts
between runs (per-run ratios 0.45-6.0x in the first run of the day); the CPU ratios
are the steadier figures. Not met: only order_status and email_sweeper (CPU to the
answer, 1.17-1.18x) were within 1.2x in that run.

Earlier sessions (old baseline without pydantic): download 1.28-1.54x, send_email
1.22-1.58x, email_sweeper 1.20-1.57x over eight runs (session 2).
"""


class _KeepRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # the 302 itself is the download function's answer


_NO_REDIRECTS = urllib.request.build_opener(_KeepRedirects)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes | None = None
    headers: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Seeded:
    """What the first requests use: one purchase per run (a link, a key, an order)."""

    bought: list[Any]
    webhook_secret: str
    paid_events: list[dict[str, Any]]  # checkout.session.completed of sessions Stripe knows


@dataclass(frozen=True)
class Case:
    function: str
    first_request: Callable[[Seeded, int], Request]  # (seeded data, run) -> its request
    expected: frozenset[int]  # the answer a working function gives it


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


def _webhook(seeded: Seeded, run: int) -> Request:
    """A purchase's first delivery: the Stripe double's own checkout.session.completed
    event for a session made there the way checkout makes it and paid (seed()), so the
    function verifies it with Stripe and fulfils it (a license, a link, an e-mail job)."""
    evt = seeded.paid_events[run]
    payload, header = se.signed(evt, seeded.webhook_secret)  # signed now: fresh timestamp
    return Request("POST", "/", payload, {"Stripe-Signature": header})


def _checkout(seeded: Seeded, run: int) -> Request:
    """What the storefront sends on Buy (site/assets/site.js, and the plain form's fields):
    its language and a fresh per-click id. No e-mail: Stripe's page asks the buyer for it;
    `email` is an option for other callers of the API (they also load email-validator)."""
    return Request("POST", "/", _json({"locale": "en", "click_id": secrets.token_urlsafe(16)}))


def _validate(seeded: Seeded, run: int) -> Request:
    key = seeded.bought[run].key
    body = {"key": key, "fingerprint": FINGERPRINT, "nonce": f"coldstart-nonce-{run:04d}"}
    return Request("POST", "/validate", _json(body))


# Every function's real first request (names from functions/main.py;
# tests/infra/test_function_list.py checks them against it, and main() refuses to run
# while a function of the stack has none).
CASES = (
    Case("checkout", _checkout, frozenset({200})),
    Case("stripe_webhook", _webhook, frozenset({200})),
    Case("download", lambda s, run: Request(
        "GET", f"/d/{s.bought[run].tokens[0]}?platform=linux-x86_64"), frozenset({302})),
    Case("send_email", lambda s, run: Request(
        "POST", "/", _json({"job_id": "email_cold_missing"})), frozenset({200})),
    Case("order_status", lambda s, run: Request(
        "GET", f"/?session_id={s.bought[run].order.id}"), frozenset({200})),
    Case("resend_links", lambda s, run: Request(
        "POST", "/", _json({"email": f"nobody{run}@example.com"})), frozenset({202})),
    Case("license_api", _validate, frozenset({200})),
    Case("reconcile", lambda s, run: Request("POST", "/", _json({"days": 1})),
         frozenset({200})),
    Case("email_sweeper", lambda s, run: Request("POST", "/", b"{}"), frozenset({200})),
)  # fmt: skip
DEFAULT_FUNCTIONS = tuple(case.function for case in CASES)


def bare_source(
    modules: tuple[str, ...], *, one_model: bool = False, collector_off: bool = False
) -> str:
    """A function answering "ok" whose module imports `modules`. pydantic 2 loads its
    parts lazily (`import pydantic` alone loads almost nothing), so "imports pydantic"
    is written as importing BaseModel, which loads pydantic's model machinery and
    pydantic-core: the library itself, none of this project's models.

    Side columns only, never the target's baseline:
    `one_model` also defines one model with one constrained field. That loads what
    pydantic defers until a model has a field (`pydantic.fields`, `pydantic.types`,
    `annotated_types`) and builds a first schema with a constraint: what any function
    that validates anything with pydantic pays.
    `collector_off` starts the way main.py does (`commerce.startup`): no cyclic garbage
    collection from the module's load until its first answer, then `gc.freeze()`. It
    shows how much of a ratio is the product's own work and how much the collector
    that the bare function leaves on."""
    imports = "\n".join(
        "from pydantic import BaseModel  # noqa: F401"
        if module == "pydantic"
        else f"import {module}  # noqa: F401"
        for module in modules
    )
    model = (
        "\nfrom pydantic import Field\n\nclass Ping(BaseModel):\n    n: int = Field(ge=0)\n"
        if one_model
        else ""
    )
    if collector_off:
        return (
            "import gc\ngc.disable()\nimport functions_framework\n"
            f"{imports}\n{model}\n"
            "@functions_framework.http\ndef bare(request):\n"
            "    if not gc.isenabled():\n        gc.freeze()\n        gc.enable()\n"
            "    return 'ok'\n"
        )
    return (
        f"import functions_framework\n{imports}\n{model}\n"
        "@functions_framework.http\ndef bare(request):\n    return 'ok'\n"
    )


def server_argv(target: str, source: Path, port: int) -> list[str]:
    """How the local stack starts a function (emulators.stack.function_spec)."""
    return [sys.executable, "-m", "emulators.function_server", "--target", target,
            "--source", str(source), "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip


@dataclass(frozen=True)
class Start:
    wall_ms: float  # process start to first answer: the target's measure
    cpu_ms: float  # user + system CPU of the server's process tree, start to exit
    status: int
    answer_cpu_ms: float = 0.0  # the same, start to first answer (the target's span)


def _children_cpu_ms() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * 1000


_TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def tree_cpu_ms(pid: int) -> float:
    """User + system CPU so far of a live process and its descendants (Linux /proc, in
    clock ticks of usually 10 ms), reaped children included: for the server, the CPU
    it spent up to the moment this is read, whatever the machine's load made it wait."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = [
            int(child)
            for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()
        ]
    except (FileNotFoundError, ProcessLookupError):
        return 0.0  # exited meanwhile
    # fields[11:15] are utime, stime, cutime, cstime (stat fields 14-17)
    own = sum(int(value) for value in fields[11:15]) * _TICK_MS
    return own + sum(tree_cpu_ms(child) for child in children)


def first_answer_ms(
    target: str, source: Path, request: Request, env: Mapping[str, str]
) -> tuple[float, int]:
    start = first_answer(target, source, request, env)
    return start.wall_ms, start.status


def first_answer(target: str, source: Path, request: Request, env: Mapping[str, str]) -> Start:
    """Start a server and time its first answer. CPU time is read from this process's
    reaped-children usage (gunicorn's master reaps its worker before it exits), so it
    counts the server's whole tree and little else: it moves far less with the
    machine's load than wall time, which waits for the CPU other work holds."""
    port = free_port()
    cpu_before = _children_cpu_ms()
    start = time.perf_counter()
    process = subprocess.Popen(
        server_argv(target, source, port), env=dict(env), cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = start + 60
        while time.perf_counter() < deadline:
            http_request = urllib.request.Request(
                f"http://127.0.0.1:{port}{request.path}", data=request.body,
                method=request.method,
                headers={"Content-Type": "application/json", **(request.headers or {})},
            )  # fmt: skip
            try:
                with _NO_REDIRECTS.open(http_request, timeout=30) as response:
                    status = response.status
            except urllib.error.HTTPError as error:
                status = error.code
            except (ConnectionError, urllib.error.URLError):
                time.sleep(0.005)
                continue
            wall = (time.perf_counter() - start) * 1000
            answer_cpu = tree_cpu_ms(process.pid)
            break
        else:
            raise RuntimeError(f"{target} did not answer within 60 s")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    return Start(wall, _children_cpu_ms() - cpu_before, status, answer_cpu)


PROBE = """
import json, sys
from functions_framework import create_app
target, method, path, body, headers, candidates = json.loads(sys.stdin.read())
client = create_app(target, sys.argv[1]).test_client()
answer = client.open(path, method=method, data=None if body is None else body.encode(),
                     headers={"Content-Type": "application/json", **headers})
print(json.dumps([answer.status_code, [m for m in candidates if m in sys.modules]]))
"""


def loaded_clients(case: Case, request: Request, env: Mapping[str, str]) -> tuple[str, ...]:
    """The client libraries the function's first request loads (fresh interpreter)."""
    message = json.dumps([
        case.function, request.method, request.path,
        None if request.body is None else request.body.decode(), dict(request.headers or {}),
        [*GOOGLE_CLIENTS, *OTHER_CLIENTS],
    ])  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(MAIN)], input=message, capture_output=True,
        text=True, env=dict(env), cwd=ROOT, timeout=120, check=True,
    )  # fmt: skip
    status, modules = json.loads(done.stdout.strip().splitlines()[-1])
    if status not in case.expected:
        raise RuntimeError(f"{case.function}: the probe's first request answered {status}")
    return tuple(modules)


WARM_TOKENS = 8
WARM_REDEMPTIONS_PER_TOKEN = 4  # a seeded link allows 5; the rate limit 10 per window


def warm_up_emulator(container: Any, tokens: list[str]) -> None:
    """Run the first requests' kinds of Firestore work (transactions with batch reads,
    queries) in this process before anything is measured. The emulator is a JVM started
    a moment ago; its first executions of each code path are slow, and only the
    function's side talks to it (Firestore itself is never cold like this)."""
    quiet = logging.getLogger("commerce")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # "unknown e-mail job" warnings, expected here
    try:
        for token in tokens:
            for _ in range(WARM_REDEMPTIONS_PER_TOKEN):
                container.download_service.redeem(
                    token, "linux-x86_64", network="bench-warm-up", user_agent="bench"
                )
        for _ in range(len(tokens) * WARM_REDEMPTIONS_PER_TOKEN):
            container.email_worker.deliver("email_cold_missing")
            container.email_worker.sweep()
    finally:
        quiet.setLevel(level)


def seed(container: Any, env: Mapping[str, str], runs: int) -> Seeded:
    """One fulfilled purchase per run (and a few to warm the emulator up with)."""
    now = container.clock.now()
    bought = []
    for n in range(runs + WARM_TOKENS):
        purchase = factories.purchase(
            container.keys, OrderState.FULFILLED, order_id=f"cs_cold_{n:04d}", now=now
        )
        assert purchase.license is not None
        container.customers.put(purchase.customer)
        container.orders.put(purchase.order)
        container.licenses.put(purchase.license)
        container.download_tokens.put(purchase.grants[0])
        bought.append(purchase)
    warm_up_emulator(container, [b.tokens[0] for b in bought[runs:]])
    return Seeded(bought[:runs], env["STRIPE_WEBHOOK_SECRET"], paid_sessions(container, runs))


def paid_sessions(container: Any, runs: int) -> list[dict[str, Any]]:
    """One Checkout Session per run made at the Stripe double as the shop makes it and
    paid there, and the double's checkout.session.completed event for each (nobody
    else is sent them: the double's webhook address is cleared). Reconcile's first
    request later lists these (paid, fulfilled by the webhook's runs) with checkout's."""
    from bench.launch_bench import buy, double_events, http

    control = f"{container.settings.stripe_api_base}/_double"
    http().post(f"{control}/config", data={"webhook_url": ""}, timeout=30).raise_for_status()
    ids = [buy(container, control, f"cold{n}@example.com") for n in range(runs)]
    completed = {
        evt["data"]["object"]["id"]: evt
        for evt in double_events(control, "checkout.session.completed")
    }
    return [completed[session_id] for session_id in ids]


@dataclass
class Row:
    case: Case
    google: tuple[str, ...]
    other: tuple[str, ...]
    base_ms: list[float]
    real_ms: list[float]
    statuses: set[int]
    base_cpu: list[float]
    real_cpu: list[float]
    base_answer_cpu: list[float]
    real_answer_cpu: list[float]
    sides: dict[str, list[float]]  # side column -> its baseline's wall times

    def ratios(self) -> list[float]:
        return [r / b for r, b in zip(self.real_ms, self.base_ms, strict=True)]


SIDE_COLUMNS = ("stripe/sendgrid", "one pydantic model", "collector off until the answer")


def side_sources(google: tuple[str, ...], other: tuple[str, ...]) -> dict[str, str]:
    """The side columns' baselines (`bare_source`); stripe only where the function
    needs a non-Google client."""
    sides = {}
    if other:
        sides["stripe/sendgrid"] = bare_source(("pydantic", *google, *other))
    sides["one pydantic model"] = bare_source(("pydantic", *google), one_model=True)
    sides["collector off until the answer"] = bare_source(("pydantic", *google), collector_off=True)
    return sides


def measure(case: Case, seeded: Seeded, env: Mapping[str, str], runs: int, tmp: Path) -> Row:
    probe_request = case.first_request(seeded, runs)  # the unmeasured run's item
    clients = loaded_clients(case, probe_request, env)
    google = tuple(m for m in clients if m in GOOGLE_CLIENTS)
    other = tuple(m for m in clients if m in OTHER_CLIENTS)
    bare = tmp / f"bare_{case.function}.py"
    bare.write_text(bare_source(("pydantic", *google)))
    sides = {}
    for number, (name, source) in enumerate(side_sources(google, other).items()):
        sides[name] = tmp / f"bare_{case.function}_side{number}.py"
        sides[name].write_text(source)
    ok = Request("GET", "/")
    # Unmeasured: writes both sides' bytecode into the shared cache. The probe used the
    # unmeasured item; the function's unmeasured start gets a fresh one where it matters.
    first_answer_ms("bare", bare, ok, env)
    for path in sides.values():
        first_answer_ms("bare", path, ok, env)
    first_answer_ms(case.function, MAIN, case.first_request(seeded, runs + 1), env)
    row = Row(case, google, other, [], [], set(), [], [], [], [], {name: [] for name in sides})
    for run in range(runs):
        base = first_answer("bare", bare, ok, env)
        real = first_answer(case.function, MAIN, case.first_request(seeded, run), env)
        for name, path in sides.items():
            row.sides[name].append(first_answer_ms("bare", path, ok, env)[0])
        row.base_ms.append(base.wall_ms)
        row.real_ms.append(real.wall_ms)
        row.base_cpu.append(base.cpu_ms)
        row.real_cpu.append(real.cpu_ms)
        row.base_answer_cpu.append(base.answer_cpu_ms)
        row.real_answer_cpu.append(real.answer_cpu_ms)
        row.statuses.add(real.status)
        print(
            f"{case.function} run {run + 1}: baseline {base.wall_ms:.0f} ms "
            f"(CPU {base.answer_cpu_ms:.0f} to answer, {base.cpu_ms:.0f} to exit), "
            f"function {real.wall_ms:.0f} ms "
            f"(CPU {real.answer_cpu_ms:.0f} to answer, {real.cpu_ms:.0f} to exit) "
            f"({real.wall_ms / base.wall_ms:.2f}x), status {real.status}; side baselines: "
            + ", ".join(f"{name} {times[-1]:.0f} ms" for name, times in row.sides.items()),
            file=sys.stderr,
        )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--functions", default=",".join(DEFAULT_FUNCTIONS), help="comma-separated")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    selected = set(args.functions.split(","))
    unknown = sorted(selected - set(DEFAULT_FUNCTIONS))
    if unknown:
        parser.error(
            f"no cold-start case for {', '.join(unknown)}; known: {', '.join(DEFAULT_FUNCTIONS)}"
        )
    missing = sorted(set(function_names()) - set(DEFAULT_FUNCTIONS))
    if missing:
        parser.error(f"no first request defined for: {', '.join(missing)}")
    load_before = os.getloadavg()

    overrides = {"DOWNLOAD_MAX_REDEMPTIONS": "100", "DOWNLOAD_RATE_LIMIT_PER_NETWORK": "100000",
                 "CHECKOUT_RATE_LIMIT": "100000"}  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name, local_stack(overrides) as local:
        tmp = Path(tmp_name)
        env = {**local.env, "PYTHONPATH": str(ROOT), "PYTHONPYCACHEPREFIX": str(tmp / "pyc")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        container = container_for(env)
        seeded = seed(container, env, args.runs + 2)
        container.db.close()
        for case in CASES:
            if case.function in selected:
                rows.append(measure(case, seeded, env, args.runs, tmp))
    load_after = os.getloadavg()
    text = report(rows, args.runs, load_before, load_after)
    print(text)
    if args.write_docs:
        write_section(DOCS, HEADING, text)


def _pair(base: list[float], real: list[float]) -> str:
    """`baseline / function | ratio` of the medians (two table cells)."""
    b, r = statistics.median(base), statistics.median(real)
    return f"{b:.0f} / {r:.0f} | {r / b:.2f}x" if b else f"- / {r:.0f} | -"


def report(
    rows: list[Row], runs: int, load_before: tuple[float, ...], load_after: tuple[float, ...]
) -> str:
    lines = [
        HEADING,
        "",
        f"`bench/coldstart_bench.py`: each function served as the local stack serves it "
        "(`emulators.function_server`, functions-framework under gunicorn on 127.0.0.1) "
        "in a fresh process, timed from process start to the answer to its real first "
        "request on the local stack's emulators and Stripe double; median of "
        f"{runs} runs alternating with the baseline, after one unmeasured start of each "
        "side (both read compiled bytecode from one cache). Baseline: a bare function "
        "served the same way whose module imports pydantic (its BaseModel: `import "
        "pydantic` alone is lazy) and the Google clients that "
        "the function's first request loads (found by a probe). Ratio = median function "
        "/ median baseline; per-run ratios = each run's function over the baseline "
        "started just before it. Three side columns, not the target: the ratio against a "
        "baseline that also imports the non-Google client the function needs (stripe), "
        "against one that also defines one pydantic model with one constrained field "
        "(`n: int = Field(ge=0)`: pydantic loads its field machinery only then, see "
        "below), and against one that starts the way main.py does, with no cyclic "
        "garbage collection until its first answer (`commerce.startup`, see below). CPU "
        "columns: user + "
        "system CPU time of each server's process tree (medians), which the machine's load "
        "moves far less than wall time: from start to the first answer (read from /proc "
        "when the answer arrives, 10 ms ticks; the span the target is about) and from "
        "start to exit (includes work after the answer, e.g. the webhook's e-mail "
        "enqueue, and shutdown). Load average (1 min) "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after, on a 2-core machine "
        "shared with other work.",
        "",
        "| function | baseline imports | baseline ms | function ms | ratio | per-run ratios "
        "| first status | with stripe/sendgrid in the baseline "
        "| with one pydantic model in the baseline "
        "| baseline with the collector off until its answer "
        "| CPU ms to answer, baseline / function | CPU ratio to answer "
        "| CPU ms to exit, baseline / function | CPU ratio to exit |",
        "|---|---|---:|---:|---:|---|---|---|---|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        base, real = statistics.median(row.base_ms), statistics.median(row.real_ms)
        ratio = real / base
        mark = "" if ratio <= TARGET else " (over target)"
        low, high = min(row.ratios()), max(row.ratios())
        sides = " | ".join(
            f"{statistics.median(row.sides[name]):.0f} ms, "
            f"{real / statistics.median(row.sides[name]):.2f}x"
            if name in row.sides
            else "-"
            for name in SIDE_COLUMNS
        )
        lines.append(
            f"| `{row.case.function}` | pydantic, {', '.join(row.google) or '(none)'} "
            f"| {base:.0f} | {real:.0f} | {ratio:.2f}x{mark} | {low:.2f}-{high:.2f}x "
            f"| {', '.join(map(str, sorted(row.statuses)))} | {sides} "
            f"| {_pair(row.base_answer_cpu, row.real_answer_cpu)} "
            f"| {_pair(row.base_cpu, row.real_cpu)} |"
        )
    lines += [
        "",
        f"Target: each function within {TARGET}x of its baseline. `download` never imports "
        "stripe, sendgrid or the Tasks client (checked by "
        "tests/delivery/test_cold_start_imports.py); main.py loads no client, domain model "
        "or feature service for any entry point, and the functions load only packages the "
        "deployed lock holds (tests/unit/test_cold_start_imports.py).",
        "",
        HISTORY,
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
