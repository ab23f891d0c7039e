"""Re-send benchmark: does `resend_links` answer a buyer and a stranger in the same time?

    .venv/bin/python -m bench.resend_bench [--requests 300] [--rounds 3] [--write-docs]

One warm `resend_links` instance (functions-framework test client) on Google's
Firestore emulator and the Cloud Tasks emulator (its tasks go to a local sink answering
200, so the worker is not measured). Requests alternate one by one between a buyer's
address (a customer with a fulfilled order and an active license) and a stranger's, so
drift of the shared machine hits both alike; the rate limits are set out of reach.
Reported: p50 and p99 of each, and the buyer/stranger ratios. The same-work property
itself is a test (tests/storefront/test_resend_same_work.py counts the operations);
this is the timing, which tests never assert.

Starts the emulators on free ports and stops them by PID at the end. `--write-docs`
replaces only the `## Re-send links` section of docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.common import summary, write_section
from commerce.adapters.tasks_queue import CloudTasksEmailQueue
from commerce.bootstrap import Container, use_container
from commerce.clock import SystemClock
from commerce.domain.orders import OrderState
from commerce.secrets import EnvSecrets
from commerce.settings import Settings
from tests.support import emulators as emu
from tests.support import factories

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "performance.md"
MAIN = str(ROOT / "functions" / "main.py")
HEADING = "## Re-send links"
STOREFRONT = "http://shop.test"
# The same benchmark on the code before issue 14's change (lookup, transaction and
# enqueue of the job on the request path for a buyer only), kept so a re-run keeps it.
BEFORE = (
    "Before the change (the same script run on the `uow` branch's code, where the "
    "request path looked the customer and orders up and, for a buyer only, committed "
    "grants and an e-mail job in a transaction and enqueued it; same machine, load "
    "average about 10): buyer p50 17.96 ms / p99 74.77 ms, stranger 8.51 / 37.40 ms: "
    "buyer / stranger p50 2.11x, p99 2.00x (per round 2.02x / 1.08x, 2.24x / 2.72x, "
    "2.05x / 2.40x). After it, the first run (before the rate-limit ids were keyed) "
    "measured p50 1.00x, p99 0.75x (per round 0.94x / 0.76x, 0.97x / 1.20x, 1.01x / "
    "1.31x)."
)
BUYER = "ada@example.com"
STRANGER = "eve@example.com"


class _Sink(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def load_average() -> str:
    try:
        return " / ".join(f"{value:.1f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="per address and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()

    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    load_before = load_average()
    with (
        tempfile.TemporaryDirectory() as tmp,
        emu.firestore_emulator(Path(tmp)),
        emu.tasks_emulator(Path(tmp)) as tasks,
    ):
        emu.reset_firestore(os.environ[emu.FIRESTORE_ENV], emu.TEST_PROJECT)
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            environment="local",
            gcp_project=emu.TEST_PROJECT,
            storefront_url=STOREFRONT,
            storefront_origins=(STOREFRONT,),
            public_base_url="http://functions.test",
            artifacts_bucket=emu.TEST_BUCKET,
            tasks_location=emu.TEST_TASKS_LOCATION,
            tasks_queue=emu.TEST_TASKS_QUEUE,
            tasks_emulator_host=tasks.host,
            email_worker_url=f"http://127.0.0.1:{sink.server_address[1]}/",
            resend_rate_limit_per_address=10**9,
            resend_rate_limit_per_network=10**9,
        )
        container = Container(
            settings, clock=SystemClock(), secrets=EnvSecrets(dict(factories.TEST_SECRETS))
        )
        container.__dict__["email_queue"] = CloudTasksEmailQueue(settings, client=tasks.client())
        bought = factories.purchase(container.keys, OrderState.FULFILLED, email=BUYER)
        assert bought.license is not None
        container.customers.put(bought.customer)
        container.orders.put(bought.order)
        container.licenses.put(bought.license)

        use_container(container)
        from functions_framework import create_app

        client = create_app("resend_links", MAIN).test_client()
        bodies = {
            address: json.dumps({"email": address, "locale": "en"}) for address in (BUYER, STRANGER)
        }
        headers = {"Content-Type": "application/json", "Origin": STOREFRONT}

        def once(address: str) -> float:
            start = time.perf_counter()
            response = client.post("/", data=bodies[address], headers=headers)
            elapsed = (time.perf_counter() - start) * 1000
            assert response.status_code == 202, response.get_data(as_text=True)
            return elapsed

        for _ in range(20):  # warm up: gRPC channels, secrets, imports
            once(BUYER)
            once(STRANGER)
        samples: dict[str, list[float]] = {BUYER: [], STRANGER: []}
        per_round: list[tuple[float, float]] = []
        for round_ in range(args.rounds):
            this_round: dict[str, list[float]] = {BUYER: [], STRANGER: []}
            for n in range(args.requests):
                # alternate which goes first, so neither always follows the other
                order = (BUYER, STRANGER) if (n + round_) % 2 == 0 else (STRANGER, BUYER)
                for address in order:
                    this_round[address].append(once(address))
            for address, values in this_round.items():
                samples[address] += values
            b, s = summary(this_round[BUYER]), summary(this_round[STRANGER])
            per_round.append((b["p50_ms"] / s["p50_ms"], b["p99_ms"] / s["p99_ms"]))
        use_container(None)
        container.db.close()
        container.email_queue.client.transport.close()
    sink.shutdown()
    sink.server_close()

    buyer, stranger = summary(samples[BUYER]), summary(samples[STRANGER])
    rounds = ", ".join(f"{p50:.2f}x / {p99:.2f}x" for p50, p99 in per_round)
    report = [
        HEADING,
        "",
        f"`bench/resend_bench.py`, {args.rounds} rounds x {args.requests} requests per "
        "address, a buyer's and a stranger's requests alternating one by one, through "
        "the `resend_links` function (functions-framework test client) on Google's "
        "Firestore emulator and the Cloud Tasks emulator. The machine is shared (2 "
        f"cores, other helpers' work running; load average {load_before} at the start, "
        f"{load_average()} at the end): compare the ratios, not the absolute numbers.",
        "",
        "| address | p50 ms | p99 ms |",
        "|---|---:|---:|",
        f"| buyer (fulfilled order, active license) | {buyer['p50_ms']:.2f} "
        f"| {buyer['p99_ms']:.2f} |",
        f"| stranger (never bought) | {stranger['p50_ms']:.2f} | {stranger['p99_ms']:.2f} |",
        "",
        f"Buyer / stranger: p50 {buyer['p50_ms'] / stranger['p50_ms']:.2f}x, p99 "
        f"{buyer['p99_ms'] / stranger['p99_ms']:.2f}x (per round, p50 / p99: {rounds}).",
        "",
        BEFORE,
        "",
        "What the request does for every address: two rate-limit counts (each a "
        "transaction reading and writing its counter document) and one CreateTask; the "
        "lookup of the customer and orders, the grants and the e-mail job happen in "
        "`send_email` (docs/storefront.md). The operations themselves are compared, "
        "counted, by tests/storefront/test_resend_same_work.py; this section only "
        "measures time.",
    ]
    text = "\n".join(report) + "\n"
    print(text)
    if args.write_docs:
        write_section(DOCS, HEADING, text)


if __name__ == "__main__":
    main()
