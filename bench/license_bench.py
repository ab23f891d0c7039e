"""License API benchmark: validate p50/p99 and requests/s in-process on the Firestore
emulator against a baseline of one bare document read measured in the same run, and
offline certificate verifications per second in the reference verifier.

    .venv/bin/python -m bench.license_bench [--requests 300] [--rounds 3] [--write-docs]

Paths measured (alternating rounds, sequential requests, a warm instance):

- baseline: one `DocumentReference.get()` of a license document;
- service: `LicenseService.validate` with a fingerprint (the rate-limit hit counted in
  memory and written in the background; license, order, activation, slots and the two
  counter documents read in one batch get; status decided);
- function: the same through `license_api` (functions-framework test client: Flask,
  JSON parsing, Ed25519 signature of the answer);
- cold identity: the service with the key-hash -> license id memo cleared each time
  (what the first validation of a key on a fresh instance costs).

Uses a running emulator when FIRESTORE_EMULATOR_HOST is set, otherwise starts one on a
free port and stops it by PID at the end. `--write-docs` replaces only the
`## License API` section of docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import summary, write_section
from commerce.bootstrap import Container, use_container
from commerce.clock import SystemClock
from commerce.domain.orders import OrderState
from commerce.licensing.models import ActivateRequest, StatusCode, ValidateRequest
from commerce.licensing.verifier import CertificateState, trusted_keys, verify_certificate
from commerce.secrets import EnvSecrets
from commerce.settings import Settings
from tests.support import emulators as emu
from tests.support import factories

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "performance.md"
MAIN = str(ROOT / "functions" / "main.py")
HEADING = "## License API"
TARGET = 1.5
# Earlier runs (same machine, same method), kept so a re-run does not erase them.
HISTORY = [
    "History (p50 / p99 of the service path vs the baseline, same method). Before the "
    "change (the rate-limit `Increment` written and awaited on the request path, in "
    "parallel with a four-document batch read): 4.75x / 1.84x (6.55 vs 1.38 ms) and "
    "3.70x / 2.19x (11.94 vs 3.22 ms). After, three earlier runs: 2.50x / 1.29x "
    "(7.93 vs 3.17 ms), 2.57x / 1.60x (6.84 vs 2.66 ms), 3.28x / 2.49x (6.22 vs "
    "1.90 ms); the machine is shared, so the spread is wide.",
    "",
    "Target NOT met for p50 and requests/s (p99 met in one run of four). What is "
    "left is the read itself: `get_all` streams one message per document, and on this "
    "client and emulator a batch get of 2, 4 and 6 documents alone measured about 1.5x, "
    "1.6-2.1x and 1.9-2.3x one bare read, with validate within 0.4 ms of a bare "
    "six-document get (cProfile: pydantic validation ~0.1 ms, no other service cost "
    "left). Reading the license and the order live already costs about 1.5x, so 1.5x "
    "is out of reach without dropping live reads (refunds, disputes, revocations, "
    "deactivations must show on the next call). Dropping the two counter reads "
    "(deciding from the counts the background write returns) would save about 0.3x "
    "at the price of a looser bound; not done.",
    "",
]
FINGERPRINT = "bench-machine-" + "ab" * 16
NETWORK = "198.51.100.7/32"


def measure(run: Callable[[], Any], count: int) -> list[float]:
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        run()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def verifications_per_second(certificate: str, keys: dict[str, Any], seconds: float) -> float:
    now = int(time.time())
    count = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        check = verify_certificate(certificate, keys, now=now, fingerprint=FINGERPRINT)
        assert check.state is CertificateState.VALID
        count += 1
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of each")
    parser.add_argument("--verify-seconds", type=float, default=3.0)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, emu.firestore_emulator(Path(tmp)):
        emu.reset_firestore(os.environ[emu.FIRESTORE_ENV], emu.TEST_PROJECT)
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            environment="local",
            gcp_project=emu.TEST_PROJECT,
            storefront_url="http://shop.test",
            public_base_url="http://functions.test",
            artifacts_bucket=emu.TEST_BUCKET,
            license_rate_limit_per_key=10**9,
            license_rate_limit_per_network=10**9,
            license_activation_rate_limit_per_hour=10**9,
        )
        container = Container(
            settings, clock=SystemClock(), secrets=EnvSecrets(dict(factories.TEST_SECRETS))
        )
        bought = factories.purchase(container.keys, OrderState.FULFILLED, order_id="cs_bench_1")
        assert bought.license is not None
        assert bought.key is not None
        container.customers.put(bought.customer)
        container.orders.put(bought.order)
        container.licenses.put(bought.license)
        key, license_id = bought.key, bought.license.id

        service = container.license_service
        activated = service.activate(ActivateRequest(key=key, fingerprint=FINGERPRINT), NETWORK)
        assert activated.status is StatusCode.VALID
        certificate: str = activated.fields["certificate"]
        request = ValidateRequest(key=key, fingerprint=FINGERPRINT)
        baseline_ref = container.licenses.ref(license_id)

        use_container(container)
        from functions_framework import create_app

        client = create_app("license_api", MAIN).test_client()
        body = json.dumps({"key": key, "fingerprint": FINGERPRINT, "nonce": "bench-nonce"})

        def baseline() -> None:
            assert baseline_ref.get().exists

        def via_service() -> None:
            assert service.validate(request, NETWORK).status is StatusCode.VALID

        def via_function() -> None:
            response = client.post(
                "/validate", data=body, headers={"Content-Type": "application/json"}
            )
            assert response.status_code == 200

        key_hash = container.keys.hash_key(key)

        def cold_identity() -> None:
            container.license_state.forget(key_hash)
            via_service()

        paths: dict[str, Callable[[], None]] = {
            "baseline": baseline,
            "service": via_service,
            "function": via_function,
            "cold": cold_identity,
        }
        for run in paths.values():  # warm up: gRPC channel, keys, imports, thread pool
            for _ in range(20):
                run()
        samples: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(args.rounds):
            for name, run in paths.items():
                samples[name] += measure(run, args.requests)
        use_container(None)
        service.close()
        container.db.close()

    rate = verifications_per_second(
        certificate, trusted_keys(container.signer.public_key_b64()), args.verify_seconds
    )
    stats = {name: summary(values) for name, values in samples.items()}
    base = stats["baseline"]

    def row(label: str, name: str) -> str:
        s = stats[name]
        return (
            f"| {label} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | {s['rps']:.0f} "
            f"| {s['p50_ms'] / base['p50_ms']:.2f}x | {s['p99_ms'] / base['p99_ms']:.2f}x |"
        )

    service_ratio = stats["service"]["p50_ms"] / base["p50_ms"]
    function_ratio = stats["function"]["p50_ms"] / base["p50_ms"]
    report = [
        HEADING,
        "",
        f"`bench/license_bench.py`, {args.rounds} alternating rounds x {args.requests} "
        "sequential requests per path, in-process against Google's Firestore emulator "
        "(2-core machine shared with other work; compare ratios, not absolute numbers).",
        "",
        "| path | p50 ms | p99 ms | req/s | p50 vs baseline | p99 vs baseline |",
        "|---|---:|---:|---:|---:|---:|",
        row("baseline: one bare document read", "baseline"),
        row("validate (service, warm instance)", "service"),
        row("validate (license_api function, signed answer)", "function"),
        row("validate, first call of a key on an instance", "cold"),
        "",
        f"Target validate <= {TARGET}x the bare read: service p50 {service_ratio:.2f}x "
        f"({'within' if service_ratio <= TARGET else 'OUTSIDE'}), function p50 "
        f"{function_ratio:.2f}x ({'within' if function_ratio <= TARGET else 'OUTSIDE'}).",
        "",
        f"Offline certificate verification (reference verifier, Ed25519 + JSON + checks, "
        f"one core): {rate:,.0f} per second.",
        "",
        "What validate does beyond the bare read: ONE batch get of six documents "
        "(license, order, activation, slots, and the per-key and per-network rate-limit "
        "counters), then model validation of each; the hit is counted in memory and "
        "written by a background thread in one batched `Increment` at most every "
        "0.25 s (`commerce.ratelimit.DeferredCounter`). The key hash -> license id "
        "mapping (immutable) is memoised per instance and re-checked against the "
        "license document on every call, so state is still read live; a cold key adds "
        "one query on `key_hash`. The function path adds Flask, JSON and the Ed25519 "
        "signature of the answer.",
        "",
        "How approximate the limits are now: an instance counts its own hits exactly "
        "(written or not, never twice: the counter document records each instance's "
        "written hits under `by_counter.<id>`); hits of OTHER instances count once "
        "they are written, so a limit can be overshot by at most what the other "
        "instances received in one flush interval (0.25 s) plus one write's latency "
        "(longer if an idle instance's CPU is throttled between requests). Refused "
        "hits are counted too; the per-license activation limit stays exact. Pinned "
        "by `tests/licensing/test_rate_limit_counting.py`.",
        "",
        *HISTORY,
    ]
    text = "\n".join(report)
    print(text)
    if args.write_docs:
        write_section(DOCS, HEADING, text)


if __name__ == "__main__":
    main()
