"""Where a first webhook delivery's CPU goes: per-phase counters on the CPU clock.

The same function, container and in-process Stripe answers as `bench.webhook_bench`,
against Google's Firestore emulator, but one delivery at a time (so each phase's CPU
time is its own, not its neighbours'): after a warm-up, N first deliveries of distinct
paid sessions, each phase timed with `time.thread_time` (CPU of the delivering thread;
waiting for Firestore costs none) by wrappers around the functions named below.
Exclusive shares: the HTTP layer is the delivery minus the service, the documents'
models and encoding are `_issue` minus the audit entry, key and grant. `--logs`
turns on the JSON logging the functions use in the cloud (to /dev/null); the benchmark
itself runs without it.

    .venv/bin/python -m bench.webhook_profile [--deliveries 500] [--logs]

Prints only (docs/performance.md, "Webhook fulfillment", quotes a run).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import functions_framework

from bench import webhook_bench as wb
from commerce.bootstrap import use_container
from commerce.logs import configure_logging
from tests.purchase import stripe_events as se
from tests.support import emulators as emu

WARMUP = 150
# (module, attribute path, phase, modules that imported the function by name)
PHASES = [
    ("commerce.purchase.gateway", "verify_signature", "sig", ["commerce.purchase.webhooks"]),
    ("commerce.purchase.gateway", "parse_event", "json", ["commerce.purchase.webhooks"]),
    ("commerce.purchase.webhooks", "check_event_ids", "ids", []),
    ("commerce.purchase.webhooks", "WebhookService.handle", "handle", []),
    ("commerce.repositories.unit_of_work", "FirestoreUnitOfWork.read", "read", []),
    ("commerce.repositories.firestore_wire", "ReadBegunTransaction.commit_now", "commit", []),
    ("commerce.purchase.fulfillment", "Fulfillment._issue", "issue", []),
    ("commerce.audit", "Auditor.record", "audit", []),
    ("commerce.keys", "KeyService.issue_key", "key", []),
    ("commerce.grants", "new_download_grant", "grant", ["commerce.purchase.fulfillment"]),
    ("commerce.purchase.fulfillment", "Fulfillment._customer_of", "address", []),
    ("commerce.purchase.verification", "SessionVerifier.verify", "verify", []),
]


class PhaseClock:
    def __init__(self) -> None:
        self.cpu: defaultdict[str, float] = defaultdict(float)
        self.local = threading.local()

    def timed(self, fn: Callable[..., Any], phase: str) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not getattr(self.local, "on", False):
                return fn(*args, **kwargs)
            started = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.cpu[phase] += time.thread_time() - started

        return wrapper

    def install(self) -> None:
        for module_name, path, phase, importers in PHASES:
            *owners, name = path.split(".")
            owner: Any = importlib.import_module(module_name)
            for part in owners:
                owner = getattr(owner, part)
            wrapped = self.timed(getattr(owner, name), phase)
            setattr(owner, name, wrapped)
            for importer in importers:
                setattr(importlib.import_module(importer), name, wrapped)


def children_cpu() -> float:
    """CPU seconds (user + system) used so far by this process's descendants: here the
    Firestore emulator, which does its share of every delivery's work (Linux /proc;
    10 ms ticks, so read it over many deliveries)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    mine, frontier = set(), [os.getpid()]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        mine.update(children)
        frontier += children
    return sum(times[pid] for pid in mine)


def profile(deliveries: int, logs: bool) -> dict[str, Any]:
    clock = PhaseClock()
    clock.install()
    container = wb.build_container(emu.TEST_PROJECT)
    if logs:
        configure_logging("INFO", emu.TEST_PROJECT)
        handler = logging.getLogger().handlers[0]
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 (for the whole run)
    use_container(container)
    client = functions_framework.create_app("stripe_webhook", wb.SOURCE).test_client()
    known = container.stripe_gateway
    assert isinstance(known, wb.KnownSessions)

    def signed(n: int) -> tuple[bytes, str]:
        evt = se.event("checkout.session.completed", se.checkout_session(email=f"p{n}@example.com"))
        known.add(evt["data"]["object"])
        return se.signed(evt, wb.WEBHOOK_SECRET)

    def deliver(payload: bytes, header: str) -> None:
        answer = client.post("/", data=payload, headers={"Stripe-Signature": header})
        if answer.status_code != 200:
            raise RuntimeError(f"delivery answered {answer.status_code}")

    for n in range(WARMUP):
        deliver(*signed(n))
    bodies = [signed(WARMUP + n) for n in range(deliveries)]
    thread_cpu = process_cpu = 0.0
    emulator_started = children_cpu()
    clock.local.on = True
    for payload, header in bodies:
        started, process_started = time.thread_time(), time.process_time()
        deliver(payload, header)
        thread_cpu += time.thread_time() - started
        process_cpu += time.process_time() - process_started
    clock.local.on = False
    emulator_cpu = children_cpu() - emulator_started
    use_container(None)
    ms = {phase: seconds / deliveries * 1000 for phase, seconds in clock.cpu.items()}
    total = thread_cpu / deliveries * 1000
    shares = {
        "HTTP layer (test client, Flask, functions-framework, endpoint)": total - ms["handle"],
        "signature check (stripe verify_header, header shape)": ms["sig"],
        "JSON parse and Stripe id shapes": ms["json"] + ms["ids"],
        "Firestore batched read (request, gRPC, decoding)": ms["read"],
        "verification rule over Stripe's answer": ms["verify"],
        "address check and customer id": ms["address"],
        "license key and download grant (hashing)": ms["key"] + ms["grant"],
        "the audit entry (model, encoding)": ms["audit"],
        "order, customer, license, grant, e-mail job (pydantic models, encoding)": ms["issue"]
        - ms["audit"]
        - ms["key"]
        - ms["grant"],
        "Firestore commit (request, gRPC)": ms["commit"],
    }
    shares["the rest (dispatch, ledger entry, turns, unit of work)"] = total - sum(shares.values())
    return {
        "deliveries": deliveries,
        "logs": logs,
        "thread_cpu": total,
        "process_cpu": process_cpu / deliveries * 1000,
        "emulator_cpu": emulator_cpu / deliveries * 1000,
        "shares": shares,
    }


def render(r: dict[str, Any]) -> str:
    logs = "JSON logs to /dev/null" if r["logs"] else "no log output, as in the benchmark"
    lines = [
        f"{r['deliveries']} first deliveries one at a time ({logs}): CPU per delivery "
        f"{r['thread_cpu']:.2f} ms on the delivering thread, {r['process_cpu']:.2f} ms for "
        f"the process; the Firestore emulator (a JVM) used {r['emulator_cpu']:.2f} ms per "
        "delivery.",
        "",
        "| phase | CPU ms | share |",
        "|---|---:|---:|",
    ]
    for phase, value in r["shares"].items():
        lines.append(f"| {phase} | {value:.3f} | {100 * value / r['thread_cpu']:.0f} % |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deliveries", type=int, default=500)
    parser.add_argument("--logs", action="store_true", help="JSON logging on (to /dev/null)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, emu.firestore_emulator(Path(tmp)) as host:
        emu.reset_firestore(host, emu.TEST_PROJECT)
        print(render(profile(args.deliveries, args.logs)))


if __name__ == "__main__":
    main()
