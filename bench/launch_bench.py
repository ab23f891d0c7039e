"""Launch-day benchmark: purchases, redemptions and validations through the functions'
HTTP servers on the local stack, with Firestore operations counted per kind of request.

    .venv/bin/python -m bench.launch_bench [--scale 1.0] [--write-docs]

The stack is the one `make dev` runs (`bench.served.local_stack`: Google's Firestore
emulator, the storage and tasks emulators, maildev, the Stripe double; free ports), and
`stripe_webhook`, `send_email`, `download` and `license_api` are functions-framework
servers on loopback, each counting its own Firestore and Cloud Tasks RPCs
(`python -m bench.served`). At scale 1:

1. 2,000 paid Checkout Sessions through the webhook at concurrency 16, plus 10 %
   duplicate deliveries shuffled among them (some arrive while the first is running)
   and 2 % of the orders refunded (`charge.refunded`, each shuffled in after its
   session's first delivery and sent once that delivery is answered, as Stripe sends a
   refund after the purchase), all in the same stream; every event signed with the
   official `stripe` library; a 5xx is re-sent like Stripe would, and counted. The e-mail
   tasks go through the tasks emulator to `send_email` and maildev; the phase ends when
   every fulfillment e-mail is sent.
2. 10,000 redemptions (every link 5 times, its limit) from 500 client networks.
3. One activation per license, then 20,000 validations from the same 500 networks.
4. One new license activated from 16 machines at once (limit 3) and its link redeemed
   16 times at once (limit 5).

Checked, not assumed: one order, one license and one fulfillment e-mail per session,
every refund applied, no 5xx left unanswered, every redemption and validation answered
as the order's state says, exactly the limit admitted in step 4. Latency p50/p99 of
each kind against its baseline, measured in this process in the same run, alternating
with the requests in 4 rounds at the same concurrency: the library's own transaction
creating 8 documents (webhook), a transaction reading and updating one document plus
one V4 URL signature (redemption), one document read (validation). `--scale 0.1` runs a
tenth of every count but the 500 networks (fewer networks would concentrate the
per-network rate-limit counters and measure contention a full run does not have).

Writes the section `## Launch day` of docs/performance.md (with `--write-docs`),
including the cost table, computed from the operations counted in this run
(`bench/cost_model.py`).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from bench import cost_model
from bench.common import percentile, write_section
from bench.served import container_for, difference, local_stack, operations, serve
from tests.purchase import stripe_events as se

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "performance.md"
HEADING = "## Launch day"
CONCURRENCY = 16
ROUNDS = 4
DUPLICATE_SHARE = 0.10
REFUND_SHARE = 0.02
REDEMPTIONS_PER_LINK = 5
MACHINES_AT_ONCE = 16
FUNCTIONS = ("stripe_webhook", "send_email", "email_sweeper", "download", "license_api")
SWEEP_AFTER_S = 10  # EMAIL_SWEEP_AFTER_SECONDS for the run (its minimum; default 300)
SWEEP_EVERY_S = 15  # how often the bench plays Cloud Scheduler calling email_sweeper
PLATFORM = "linux-x86_64"


@dataclass
class Outcome:
    """Latencies (s) and statuses of one kind of request."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    retried_5xx: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, seconds: float, status: int) -> None:
        with self.lock:
            self.latencies.append(seconds)
            self.statuses[status] += 1


def network_of(i: int) -> str:
    return f"198.18.{i // 250}.{i % 250 + 1}"  # 198.18.0.0/15: benchmark addresses


def run(jobs: Sequence[Callable[[], None]], concurrency: int = CONCURRENCY) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(job) for job in jobs]:
            future.result()
    return time.perf_counter() - started


def alternate(
    jobs: Sequence[Callable[[], None]], baseline: Callable[[], None], outcome: Outcome
) -> tuple[float, list[float]]:
    """Run `jobs` in ROUNDS parts, each followed by as many baseline calls (timed)."""
    base: list[float] = []
    lock = threading.Lock()

    def timed() -> None:
        start = time.perf_counter()
        baseline()
        with lock:
            base.append(time.perf_counter() - start)

    wall = 0.0
    for r in range(ROUNDS):
        part = jobs[r * len(jobs) // ROUNDS : (r + 1) * len(jobs) // ROUNDS]
        wall += run(part)
        run([timed] * len(part))
    return wall, base


_session = threading.local()


def http() -> requests.Session:
    if not hasattr(_session, "value"):
        _session.value = requests.Session()
    value: requests.Session = _session.value
    return value


def ms(samples: list[float]) -> dict[str, float]:
    return {"p50": statistics.median(samples) * 1000, "p99": percentile(samples, 0.99) * 1000}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full run")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument(
        "--render", type=Path, help="only re-render the section from a run's printed JSON"
    )
    args = parser.parse_args(argv)
    if args.render:
        rendered = _int_keys(json.loads(args.render.read_text().strip().splitlines()[-1]))
        text = report(rendered)
        print(text)
        if args.write_docs:
            write_section(DOCS, HEADING, text)
        return
    purchases = max(10, round(2000 * args.scale))
    redemptions = purchases * REDEMPTIONS_PER_LINK
    validations = round(20000 * args.scale)
    networks = min(500, redemptions)
    rng = random.Random(args.seed)
    result: dict[str, Any] = {
        "scale": args.scale,
        "purchases": purchases,
        "redemptions": redemptions,
        "validations": validations,
        "networks": networks,
    }
    with local_stack({"EMAIL_SWEEP_AFTER_SECONDS": str(SWEEP_AFTER_S)}) as local:
        env = local.env
        container = container_for(env)
        secret = env["STRIPE_WEBHOOK_SECRET"]
        with serve(local, FUNCTIONS, counted=True) as urls:
            purchase_phase(result, container, urls, secret, env["STRIPE_API_BASE"], purchases, rng)
            redemption_phase(result, container, urls, networks, rng)
            validation_phase(result, container, urls, validations, networks, rng)
            contention_phase(result, container, urls, secret, env["STRIPE_API_BASE"])
    result["failures"] = failures(result)
    text = report(result)
    print(text)
    print(json.dumps(result, default=str))  # the whole result: --render reads it back
    if args.write_docs:
        write_section(DOCS, HEADING, text)
    if result["failures"]:
        sys.exit("launch benchmark FAILED: " + "; ".join(result["failures"]))


def _int_keys(value: Any) -> Any:
    """JSON turned the HTTP statuses used as keys into strings: turn them back."""
    if isinstance(value, dict):
        return {
            (int(k) if isinstance(k, str) and k.isdigit() else k): _int_keys(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_int_keys(v) for v in value]
    return value


# -- 1. purchases ------------------------------------------------------------------------------


def deliver(
    url: str,
    evt: dict[str, Any],
    secret: str,
    outcome: Outcome,
    *,
    after: threading.Event | None = None,
    answered: threading.Event | None = None,
) -> None:
    """Deliver `evt` (re-sent after a 5xx, as Stripe does); `after`: wait (untimed) for
    that event first; `answered`: set once this delivery was accepted."""
    if after is not None and not after.wait(timeout=900):
        raise RuntimeError("the delivery this one follows was never answered")
    for _ in range(50):
        payload, header = se.signed(evt, secret)
        start = time.perf_counter()
        answer = http().post(url, data=payload, headers={"Stripe-Signature": header}, timeout=60)
        outcome.add(time.perf_counter() - start, answer.status_code)
        if answer.status_code < 500:
            if answer.status_code != 200:
                raise RuntimeError(f"webhook answered {answer.status_code}: {answer.text[:200]}")
            if answered is not None:
                answered.set()
            return
        with outcome.lock:
            outcome.retried_5xx += 1
        time.sleep(0.2)
    raise RuntimeError("a delivery was never accepted")


def paid_on_the_double(
    container: Any, stripe_api: str, n: int, rng: random.Random
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """`n` sessions created at the Stripe double with the shop's own parameters
    (`purchase.checkout.session_params`) and paid there, and REFUND_SHARE of them
    refunded in full: the webhook verifies every paid session with Stripe, so the
    sessions must exist there. The double's webhook URL is cleared first: the bench
    delivers the double's own events itself, at its concurrency. Returns the
    `checkout.session.completed` events and the `charge.refunded` event by session id.
    Untimed set-up."""
    control = f"{stripe_api}/_double"
    requests.post(f"{control}/config", data={"webhook_url": ""}, timeout=30).raise_for_status()
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda i: buy(container, control, f"buyer{i}@example.com"), range(n)))
    for session_id in rng.sample(ids, max(1, round(n * REFUND_SHARE))):
        http().post(f"{control}/sessions/{session_id}/refund", timeout=30).raise_for_status()
    completed = {
        evt["data"]["object"]["id"]: evt
        for evt in double_events(control, "checkout.session.completed")
    }
    by_intent = {evt["data"]["object"]["payment_intent"]: sid for sid, evt in completed.items()}
    refunds = {
        by_intent[evt["data"]["object"]["payment_intent"]]: evt
        for evt in double_events(control, "charge.refunded")
    }
    return [completed[session_id] for session_id in ids], refunds


def buy(container: Any, control: str, email: str) -> str:
    """A Checkout Session made at the Stripe double as the shop makes it, and paid."""
    from commerce.purchase.checkout import client_reference_id, session_params
    from commerce.purchase.requests import CheckoutRequest

    request = CheckoutRequest(email=email)
    params = session_params(container.settings, request, client_reference_id(None))
    session_id: str = container.stripe_gateway.create_checkout_session(params, None)["id"]
    answer = http().post(
        f"{control}/sessions/{session_id}/pay", data={"outcome": "paid"}, timeout=60
    )
    answer.raise_for_status()
    return session_id


def double_events(control: str, kind: str) -> list[dict[str, Any]]:
    """The events the Stripe double made, of one type, exactly as it would send them."""
    answer = http().get(f"{control}/events", params={"type": kind}, timeout=120)
    answer.raise_for_status()
    return [row["event"] for row in answer.json()["data"]]


def purchase_phase(
    result: dict[str, Any],
    container: Any,
    urls: dict[str, str],
    secret: str,
    stripe_api: str,
    n: int,
    rng: random.Random,
) -> None:
    from google.cloud import firestore

    url = urls["stripe_webhook"]
    completed, refunds = paid_on_the_double(container, stripe_api, n, rng)
    sessions = [evt["data"]["object"] for evt in completed]
    refunded = [s for s in sessions if s["id"] in refunds]
    deliveries = completed + [rng.choice(completed) for _ in range(round(n * DUPLICATE_SHARE))]
    rng.shuffle(deliveries)
    plan = refund_plan(deliveries, refunds, rng)
    db = container.db

    def bare() -> None:
        refs = [db.collection("bench_baseline").document() for _ in range(8)]

        @firestore.transactional
        def work(tx: Any) -> None:
            for ref in refs:
                tx.create(ref, {"n": 1, "at": firestore.SERVER_TIMESTAMP})

        work(db.transaction())

    before = {name: operations(urls[name]) for name in ("stripe_webhook", "send_email")}
    sweeper_before = operations(urls["email_sweeper"])
    outcome = Outcome()
    refund_outcome = Outcome()
    answered = {s["id"]: threading.Event() for s in sessions}
    jobs: list[Callable[[], None]] = []
    for session_id, evt in plan:
        if evt["type"] == "charge.refunded":
            jobs.append(
                lambda e=evt, a=answered[session_id]: deliver(
                    url, e, secret, refund_outcome, after=a
                )
            )
        else:
            jobs.append(
                lambda e=evt, a=answered[session_id]: deliver(url, e, secret, outcome, answered=a)
            )
    wall, base = alternate(jobs, bare, outcome)
    drained, sweeps = wait_for_emails(container, n, urls["email_sweeper"])
    after = {name: operations(urls[name]) for name in ("stripe_webhook", "send_email")}

    orders = {d.id: d.to_dict() for d in db.collection("orders").stream()}
    licenses = [d.to_dict() for d in db.collection("licenses").stream()]
    license_orders = Counter(lic.get("order_id") for lic in licenses)
    ours = {s["id"] for s in sessions}
    refunded_ids = {s["id"] for s in refunded}
    states = Counter(str(o.get("state")) for o in orders.values())
    result["purchase"] = {
        "deliveries": len(deliveries),
        "duplicates": len(deliveries) - n,
        "refunds": len(refunds),
        "wall_s": wall,
        "latency": ms(outcome.latencies),
        "refund_latency": ms(refund_outcome.latencies),
        "baseline": ms(base),
        "statuses": dict(outcome.statuses + refund_outcome.statuses),
        "retried_5xx": outcome.retried_5xx + refund_outcome.retried_5xx,
        "orders": len(orders.keys() & ours),
        "extra_orders": len(orders.keys() - ours),
        "licenses": len(licenses),
        "orders_with_one_license": sum(1 for o in ours if license_orders[o] == 1),
        "orders_refunded": sum(
            1 for o in refunded_ids if str(orders.get(o, {}).get("state")) == "refunded"
        ),
        "order_states": dict(states),
        "emails_sent": drained,
        "sweeps": sweeps,
        "operations": {
            **{name: dict(difference(after[name], before[name])) for name in after},
            "email_sweeper": difference(operations(urls["email_sweeper"]), sweeper_before),
        },
        "hot_documents": hot_documents(after, before),
    }


def refund_plan(
    deliveries: list[dict[str, Any]], refunds: dict[str, dict[str, Any]], rng: random.Random
) -> list[tuple[str, dict[str, Any]]]:
    """(session id, event) of `deliveries` with each refund inserted at a random place
    after its session's first delivery (the refund job also waits for that delivery's
    answer: Stripe refunds a payment it took; a refund first is another case, covered
    in tests/purchase)."""
    plan = [(evt["data"]["object"]["id"], evt) for evt in deliveries]
    for session_id, refund in refunds.items():
        first = next(i for i, (sid, _) in enumerate(plan) if sid == session_id)
        plan.insert(rng.randint(first + 1, len(plan)), (session_id, refund))
    return plan


def wait_for_emails(container: Any, n: int, sweeper: str, timeout: float = 900) -> tuple[int, int]:
    """(fulfillment e-mails sent, sweeper calls) once every one is sent or the timeout
    passes. The bench calls `email_sweeper` every SWEEP_EVERY_S as Cloud Scheduler
    would: the tasks emulator retries a failed push only a few times without backoff,
    and in the cloud the sweeper is what re-enqueues a job whose task was lost."""
    deadline = time.monotonic() + timeout
    next_sweep = time.monotonic() + SWEEP_EVERY_S
    sent = sweeps = 0
    while time.monotonic() < deadline:
        jobs = [d.to_dict() for d in container.db.collection("email_jobs").stream()]
        sent = sum(1 for job in jobs if str(job.get("state")) == "sent")
        if sent >= n and all(str(job.get("state")) in {"sent", "dead"} for job in jobs):
            break
        if time.monotonic() >= next_sweep:
            http().post(sweeper, json={}, timeout=120).raise_for_status()
            sweeps += 1
            next_sweep = time.monotonic() + SWEEP_EVERY_S
        time.sleep(3)
    return sent, sweeps


# -- 2. redemptions ----------------------------------------------------------------------------


def links(container: Any) -> list[tuple[str, bool]]:
    """(plaintext token, its order refunded?) of every fulfillment link, derived as the
    e-mail worker derives them."""
    db = container.db
    refunded = {d.id for d in db.collection("orders").stream() if str(d.get("state")) == "refunded"}
    result = []
    for doc in db.collection("download_tokens").stream():
        grant = doc.to_dict()
        token = container.keys.token_for(grant["token_id"], grant.get("secret_id"))
        result.append((token, grant["order_id"] in refunded))
    return result


def redemption_phase(
    result: dict[str, Any],
    container: Any,
    urls: dict[str, str],
    networks: int,
    rng: random.Random,
) -> None:
    from google.cloud import firestore

    url = urls["download"]
    tokens = links(container)
    plan = [(t, refused, k) for t, refused in tokens for k in range(REDEMPTIONS_PER_LINK)]
    rng.shuffle(plan)
    outcome = Outcome()
    wrong: Counter[str] = Counter()

    def redeem(token: str, refused: bool, i: int) -> None:
        start = time.perf_counter()
        answer = http().get(
            f"{url}/d/{token}",
            params={"platform": PLATFORM},
            headers={"X-Forwarded-For": network_of(i % networks)},
            allow_redirects=False,
            timeout=60,
        )
        outcome.add(time.perf_counter() - start, answer.status_code)
        expected_ok = not refused
        if (answer.status_code == 302) != expected_ok or answer.status_code >= 500:
            with outcome.lock:
                wrong[f"{'refunded' if refused else 'paid'}->{answer.status_code}"] += 1

    db = container.db
    object_name = "bench/baseline.tar.gz"

    def bare() -> None:
        # One document per thread, like a redemption updates its own link's document.
        ref = db.collection("bench_baseline").document(f"r{threading.get_ident()}")

        @firestore.transactional
        def work(tx: Any) -> None:
            snapshot = ref.get(transaction=tx)
            tx.set(ref, {"n": int((snapshot.to_dict() or {}).get("n", 0)) + 1})

        work(db.transaction())
        container.artifacts.signed_url(object_name, download_name="genx.tar.gz")

    before = operations(url)
    jobs = [lambda p=p, i=i: redeem(*p[:2], i) for i, p in enumerate(plan)]
    wall, base = alternate(jobs, bare, outcome)
    after = operations(url)
    result["redemption"] = {
        "requests": len(plan),
        "links": len(tokens),
        "refused_links": sum(1 for _, refused in tokens if refused),
        "wall_s": wall,
        "latency": ms(outcome.latencies),
        "baseline": ms(base),
        "statuses": dict(outcome.statuses),
        "unexpected": dict(wrong),
        "operations": {"download": dict(difference(after, before))},
        "hot_documents": hot_documents({"download": after}, {"download": before}),
    }


# -- 3. validations ----------------------------------------------------------------------------


def license_keys(container: Any) -> list[tuple[str, bool]]:
    result = []
    for doc in container.db.collection("licenses").stream():
        lic = doc.to_dict()
        key = container.keys.key_for(doc.id, lic.get("generation", 1), lic["secret_id"])
        result.append((key, str(lic.get("order_state")) == "refunded"))
    return result


_nonces = iter(range(10**12))
_nonce_lock = threading.Lock()


def call_license(url: str, path: str, body: dict[str, Any], network: str) -> tuple[int, str]:
    with _nonce_lock:
        nonce = f"launch-nonce-{next(_nonces):012d}"  # the client's fresh nonce, echoed
    answer = http().post(
        f"{url}/{path}",
        json={**body, "nonce": nonce},
        headers={"X-Forwarded-For": network},
        timeout=60,
    )
    try:
        status = str(answer.json().get("status"))
    except ValueError:
        status = "(not json)"
    return answer.status_code, status


def validation_phase(
    result: dict[str, Any],
    container: Any,
    urls: dict[str, str],
    n: int,
    networks: int,
    rng: random.Random,
) -> None:
    url = urls["license_api"]
    keys = license_keys(container)
    machine = "launch-machine-" + "cd" * 16
    activations = Counter[str]()
    activation_http = Outcome()

    def activate(key: str, i: int) -> None:
        start = time.perf_counter()
        code, status = call_license(
            url, "activate", {"key": key, "fingerprint": machine}, network_of(i % networks)
        )
        activation_http.add(time.perf_counter() - start, code)
        with activation_http.lock:
            activations[status] += 1

    before_activations = operations(url)
    run([lambda k=k, i=i: activate(k, i) for i, (k, _) in enumerate(keys)])
    after_activations = operations(url)

    plan = [keys[i % len(keys)] for i in range(n)]
    rng.shuffle(plan)
    outcome = Outcome()
    answers: Counter[str] = Counter()
    wrong: Counter[str] = Counter()
    first = keys[0][0]
    bare_ref = container.db.collection("licenses").document(
        next(iter(container.db.collection("licenses").limit(1).stream())).id
    )
    del first

    def validate(key: str, refunded: bool, i: int) -> None:
        start = time.perf_counter()
        code, status = call_license(
            url,
            "validate",
            {"key": key, "fingerprint": machine},
            network_of(i % networks),
        )
        outcome.add(time.perf_counter() - start, code)
        expected = "REFUNDED" if refunded else "VALID"
        with outcome.lock:
            answers[status] += 1
            if status != expected or code >= 500:
                wrong[f"{expected}->{code} {status}"] += 1

    def bare() -> None:
        bare_ref.get()

    before = operations(url)
    jobs = [lambda p=p, i=i: validate(*p, i) for i, p in enumerate(plan)]
    wall, base = alternate(jobs, bare, outcome)
    after = operations(url)
    result["validation"] = {
        "requests": n,
        "licenses": len(keys),
        "activations": dict(activations),
        "activation_statuses": dict(activation_http.statuses),
        "activation_operations": {
            "license_api": dict(difference(after_activations, before_activations))
        },
        "wall_s": wall,
        "latency": ms(outcome.latencies),
        "baseline": ms(base),
        "statuses": dict(outcome.statuses),
        "answers": dict(answers),
        "unexpected": dict(wrong),
        "operations": {"license_api": dict(difference(after, before))},
        "hot_documents": hot_documents({"license_api": after}, {"license_api": before}),
    }


# -- 4. one license from many machines, one link at once ---------------------------------------


def contention_phase(
    result: dict[str, Any], container: Any, urls: dict[str, str], secret: str, stripe_api: str
) -> None:
    control = f"{stripe_api}/_double"
    session_id = buy(container, control, "contention@example.com")
    (completed,) = [
        evt
        for evt in double_events(control, "checkout.session.completed")
        if evt["data"]["object"]["id"] == session_id
    ]
    deliver(urls["stripe_webhook"], completed, secret, Outcome())
    order = container.orders.get(session_id)
    lic = container.licenses.get(order.license_id)
    key = container.keys.key_for(lic.id, lic.generation, lic.secret_id)
    grant = container.download_tokens.by_token_id(order.download_token_ids[0])
    token = container.keys.token_for(grant.token_id, grant.secret_id)
    barrier = threading.Barrier(MACHINES_AT_ONCE)
    activations: Counter[str] = Counter()
    redemptions: Counter[int] = Counter()
    lock = threading.Lock()

    def activate(i: int) -> None:
        barrier.wait()
        code, status = call_license(
            urls["license_api"],
            "activate",
            {"key": key, "fingerprint": f"machine-{i:02d}-" + "ef" * 16},
            network_of(i),
        )
        with lock:
            activations[f"{code} {status}"] += 1

    run([lambda i=i: activate(i) for i in range(MACHINES_AT_ONCE)], MACHINES_AT_ONCE)
    barrier = threading.Barrier(MACHINES_AT_ONCE)

    def redeem(i: int) -> None:
        barrier.wait()
        answer = http().get(
            f"{urls['download']}/d/{token}",
            params={"platform": PLATFORM},
            headers={"X-Forwarded-For": network_of(i)},
            allow_redirects=False,
            timeout=60,
        )
        with lock:
            redemptions[answer.status_code] += 1

    run([lambda i=i: redeem(i) for i in range(MACHINES_AT_ONCE)], MACHINES_AT_ONCE)
    stored = container.licenses.get(lic.id)
    result["contention"] = {
        "machines": MACHINES_AT_ONCE,
        "activation_limit": container.settings.license_activation_limit,
        "activations": dict(activations),
        "machines_on_license": len(stored.activation_ids),
        "redemption_limit": container.settings.download_max_redemptions,
        "redemptions": dict(redemptions),
        "redemption_count": container.download_tokens.get(grant.token_hash).redemptions,
    }


# -- checks and report -------------------------------------------------------------------------


WINDOW_S = 10.0  # "sustained": more than WINDOW_S writes within some WINDOW_S seconds


def hot_documents(after: dict[str, Any], before: dict[str, Any]) -> list[dict[str, Any]]:
    """Documents written faster than once a second, sustained over WINDOW_S seconds,
    during the phase (all functions' writes together), and each one's 1-second peak."""
    times: dict[str, list[float]] = {}
    for name, snap in after.items():
        earlier = before[name]["writes_at"]
        for path, stamps in snap["writes_at"].items():
            new = stamps[len(earlier.get(path, [])) :]
            if new:
                times.setdefault(path, []).extend(new)
    hot = []
    for path, stamps in times.items():
        if len(stamps) <= WINDOW_S:
            continue
        stamps.sort()
        sustained, peak = _most_within(stamps, WINDOW_S), _most_within(stamps, 1.0)
        if sustained > WINDOW_S:
            hot.append(
                {
                    "document": path,
                    "writes": len(stamps),
                    "per_s_sustained": sustained / WINDOW_S,
                    "peak_per_s": peak,
                }
            )
    hot.sort(key=lambda row: (-row["per_s_sustained"], -row["writes"]))
    return hot


def _most_within(stamps: list[float], seconds: float) -> int:
    most, left = 0, 0
    for right, stamp in enumerate(stamps):
        while stamp - stamps[left] >= seconds:
            left += 1
        most = max(most, right - left + 1)
    return most


def failures(result: dict[str, Any]) -> list[str]:
    found = []
    p = result["purchase"]
    n = result["purchases"]
    if p["orders"] != n or p["extra_orders"]:
        found.append(f"orders {p['orders']} (+{p['extra_orders']}) for {n} sessions")
    if p["orders_with_one_license"] != n or p["licenses"] != n:
        found.append(f"{p['licenses']} licenses, {p['orders_with_one_license']} orders with one")
    if p["orders_refunded"] != p["refunds"]:
        found.append(f"{p['orders_refunded']} of {p['refunds']} refunds applied")
    if p["emails_sent"] != n:
        found.append(f"{p['emails_sent']} of {n} fulfillment e-mails sent")
    for phase in ("redemption", "validation"):
        if result[phase]["unexpected"]:
            found.append(f"{phase}: unexpected answers {result[phase]['unexpected']}")
    for phase in ("purchase", "redemption", "validation"):
        errors = sum(c for s, c in result[phase]["statuses"].items() if int(s) >= 500)
        if errors and phase != "purchase":
            found.append(f"{phase}: {errors} answers 5xx")
    c = result["contention"]
    admitted = sum(v for k, v in c["activations"].items() if k.endswith(" VALID"))
    if admitted != c["activation_limit"] or c["machines_on_license"] != c["activation_limit"]:
        found.append(f"{admitted} machines admitted, {c['machines_on_license']} stored")
    if c["redemptions"].get(302, 0) != c["redemption_limit"]:
        found.append(f"{c['redemptions']} redemptions of a {c['redemption_limit']}-use link")
    if any(int(code) >= 500 for code in c["redemptions"]) or any(
        k.startswith("5") for k in c["activations"]
    ):
        found.append("5xx under contention")
    return found


def per(operations: dict[str, dict[str, float]], count: int) -> dict[str, float]:
    """Operations of every function involved, per request of the phase's kind."""
    total: dict[str, float] = {}
    for name, ops in operations.items():
        for key, value in ops.items():
            total[key] = total.get(key, 0.0) + value
        memory = ops.get("cpu_seconds", 0.0) * cost_model.MEMORY_GIB[name]
        total["memory_gib_seconds"] = total.get("memory_gib_seconds", 0.0) + memory
    return {k: v / count for k, v in sorted(total.items()) if v}


def report(result: dict[str, Any]) -> str:
    p, r, v, c = (
        result["purchase"],
        result["redemption"],
        result["validation"],
        result["contention"],
    )
    n = result["purchases"]
    # The counts per operation as the operations table prints them: the cost table is
    # computed from exactly these (`cost_model.printed`), and they go into the JSON.
    # The bench's own sweeper is left out of a purchase (`sweeper_note`).
    purchase_ops = {k: v for k, v in p["operations"].items() if k != "email_sweeper"}
    units = cost_model.printed(
        {
            "purchase": per(purchase_ops, n),
            "redemption": per(r["operations"], r["requests"]),
            "validation": per(v["operations"], v["requests"]),
        }
    )
    result["per_unit"] = units

    def row(label: str, lat: dict[str, float], base: dict[str, float], base_label: str) -> str:
        return (
            f"| {label} | {lat['p50']:.1f} | {lat['p99']:.1f} | {base_label} | "
            f"{base['p50']:.1f} | {base['p99']:.1f} | {lat['p50'] / base['p50']:.2f}x | "
            f"{lat['p99'] / base['p99']:.2f}x |"
        )

    lines = [
        HEADING,
        "",
        f"`bench/launch_bench.py --scale {result['scale']:g}`: {n} purchases "
        f"({p['duplicates']} duplicate deliveries, {p['refunds']} refunds), "
        f"{r['requests']} redemptions and {v['requests']} validations from "
        f"{result['networks']} client networks, concurrency {CONCURRENCY}, through the "
        "functions' HTTP servers on the local stack (functions-framework under gunicorn on "
        "loopback, Google's Firestore emulator, the tasks emulator, maildev). Baselines in "
        f"this process, alternating with the requests in {ROUNDS} rounds at the same "
        "concurrency. Shared 2-core machine: compare ratios, not absolute times.",
        "",
        "| requests | p50 ms | p99 ms | baseline | base p50 | base p99 | p50 ratio | p99 ratio |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
        row(
            "webhook deliveries (first and duplicate)",
            p["latency"],
            p["baseline"],
            "library transaction creating 8 documents",
        ),
        row(
            "refunds (`charge.refunded`, in the same stream)",
            p["refund_latency"],
            p["baseline"],
            "library transaction creating 8 documents",
        ),
        row(
            "redemptions",
            r["latency"],
            r["baseline"],
            "transaction reading and updating 1 document + V4 URL signature",
        ),
        row("validations", v["latency"], v["baseline"], "one document read"),
        "",
        f"Correctness: {p['orders']} orders and {p['licenses']} licenses for {n} sessions "
        f"({p['orders_with_one_license']} orders with exactly one license), "
        f"{p['orders_refunded']} of {p['refunds']} refunds applied, {p['emails_sent']} "
        f"fulfillment e-mails sent ({p['sweeps']} sweeper calls, every {SWEEP_EVERY_S} s, "
        f"sweeping jobs older than {SWEEP_AFTER_S} s); webhook statuses {p['statuses']} "
        f"({p['retried_5xx']} deliveries re-sent after a 5xx); redemptions {r['statuses']} "
        f"({r['refused_links']} links of refunded orders refused as expected; unexpected: "
        f"{r['unexpected'] or 'none'}); activations {v['activations']}; validations "
        f"{v['answers']} (unexpected: {v['unexpected'] or 'none'}). One license from "
        f"{c['machines']} machines at once: {c['activations']} ({c['machines_on_license']} "
        f"stored, limit {c['activation_limit']}); one link {c['machines']} times at once: "
        f"{c['redemptions']} (count {c['redemption_count']}, limit {c['redemption_limit']}).",
        "",
        "Firestore and Cloud Tasks operations, counted at the gRPC channel of each function "
        "process (a purchase: its webhook deliveries with its share of duplicates and "
        "refunds, and its `send_email` run):",
        "",
        cost_model.operations_table(units),
        "",
        sweeper_note(result),
        "",
        hot_section(result),
        "",
        DESIGN,
        cost_model.cost_section(units, result),
    ]
    if result.get("failures"):
        lines += ["", "**FAILED:** " + "; ".join(result["failures"])]
    return "\n".join(lines)


DESIGN = """\
Design answers for the documents such a table lists (a run at scale 0.1 listed
`rate_limits` and `download_tokens` documents at 1.4-2.0 writes per second over 10 s,
the five redemptions of one link landing close together) and for the 5xx the checks
report (Firestore's
guidance: cloud.google.com/firestore/docs/best-practices, "Updates to a single
document", and /docs/solutions/counters, distributed counters whose write rate grows
with the number of shards):

- `rate_limits/<hash>-<window>` written by `download` (a network's and a link's
  counter for the current window, incremented inside every redemption's transaction):
  every buyer behind one address (an office, a campus, a carrier NAT) writes the same
  network counter, and its redemptions serialize on it. Answer: take the per-network
  counter out of the transaction and count it like `license_api` does
  (`commerce.ratelimit.DeferredCounter`: counted in memory, one batched `Increment` per
  counter at most every 0.25 s, limits approximate by what other instances saw in about
  half a second), or, where exactness matters, a sharded counter (N shard documents per
  window, each redemption increments one at random, the check reads all N in its
  batched read: N times the sustained rate for N-1 more reads per redemption).
- `download_tokens/<hash>` (a link's redemption count): it is the product's limit (5
  uses) and must stay exact, so it stays one document in the transaction; its lifetime
  total is bounded by that limit, so its rate can only be high in a burst, and a burst on
  one link (the shared-link case) serializes on it by design. The losers of that race
  wait their turn in the instance (`commerce.turns`, one turn per token before the
  transaction, as the webhook takes one per session), and across instances the unit of
  work retries contention with growing, jittered pauses; what still runs out of
  attempts is a 503 logged as `storage.contention` (see "One link ... at once" above).
- One license activated from many machines at once: the license document holds the
  machine ids (the exact activation limit), so concurrent activations serialize on it
  the same way, with the same answer (one turn per license in the instance).
- Refunds and lost disputes (fixed): `Fulfillment.record_refund` and `close_dispute`
  used to query the order's download grants (`download_tokens where order_id == ...`)
  inside their pessimistic transaction. With 40 refunds delivered 16 at once (the full
  scale) the emulator stalled for over ten minutes with every refund waiting in its
  Commit (10 at once: the same; 4 at once: about 12 s each), and with that code the
  test of 40 refunds from 16 threads in tests/purchase/test_refund_grants.py had not
  finished after 6 minutes (stopped there). Now the order lists its grants' document
  ids (`Order.download_grant_ids`, added by fulfillment and re-send in the transaction
  that creates each grant) and the refund reads them by key with the order and
  license, so the transaction locks those documents, not a query's range; an order
  stored before the list existed has its grants found by a query outside the
  transaction, then locked by key inside it. Refunds go in the purchase stream at
  concurrency 16 again (the "refunds" row above) and every one is applied; the same
  test file holds the keyed read, the old-order fallback and 40 refunds from 16
  threads (half of them on old orders) to it.
- E-mail jobs (`email_jobs/<id>`, three writes within about a second: claim, sending,
  sent) and a fulfillment's order/license/grant are short bursts of 2-3 writes, below
  the sustained rate; not listed.
"""


def sweeper_note(result: dict[str, Any]) -> str:
    """What the bench's `email_sweeper` calls did, kept out of the purchase column."""
    p = result["purchase"]
    ops = p["operations"].get("email_sweeper", {})
    return (
        f"Not in the purchase column: the bench's {p['sweeps']} `email_sweeper` calls (every "
        f"{SWEEP_EVERY_S} s, re-enqueuing jobs pending for over {SWEEP_AFTER_S} s) made "
        f"{ops.get('tasks.CreateTask', 0):.0f} Cloud Tasks tasks, "
        f"{ops.get('firestore.writes', 0):.0f} Firestore writes and "
        f"{ops.get('firestore.billed_reads', 0):.0f} billed reads "
        f"({ops.get('cpu_seconds', 0):.1f} CPU seconds): the local tasks emulator drains "
        f"the {result['purchases']} e-mail jobs over minutes, so jobs still queued are swept "
        "again and again. Deployed, the sweeper runs on Cloud Scheduler with the default "
        "`EMAIL_SWEEP_AFTER_SECONDS` of 300 and Cloud Tasks dispatches within seconds, so a "
        "sweep finds nothing due unless a task was lost."
    )


def hot_section(result: dict[str, Any]) -> str:
    rows = []
    for phase in ("purchase", "redemption", "validation"):
        for hot in result[phase]["hot_documents"][:8]:
            rows.append(
                f"| {phase} | `{hot['document']}` | {hot['writes']} "
                f"| {hot['per_s_sustained']:.1f} | {hot['peak_per_s']} |"
            )
    head = [
        "Documents written faster than Firestore's documented sustained rate of about one "
        f"write per second per document, over {WINDOW_S:g} seconds (up to 8 per phase; "
        "short bursts, like an e-mail job's three writes within a second, are not listed):",
        "",
        f"| phase | document | writes | per s over the busiest {WINDOW_S:g} s | most in 1 s |",
        "|---|---|---:|---:|---:|",
    ]
    return "\n".join(head + (rows or ["| - | none | | | |"]))


if __name__ == "__main__":
    main()
