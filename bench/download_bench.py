"""Download redemption benchmark: p50/p99 and requests/s, in-process, on the emulators.

Compares `DownloadService.redeem` (rate limits + grant/order/license checks + counted
redemption + audit in one transaction, then a V4 URL signature) with a baseline
measured in the same run: one bare Firestore transaction (read one document, write
it) plus one URL signature. Target: redemption within 1.5x of the baseline.

    .venv/bin/python -m bench.download_bench [--requests 300] [--write-docs]

Uses running emulators when FIRESTORE_EMULATOR_HOST / STORAGE_EMULATOR_HOST are set,
otherwise starts both on free ports and stops them by PID at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.common import summary, write_section
from commerce.adapters.artifacts import ArtifactStore
from commerce.bootstrap import Container
from commerce.clock import SystemClock
from commerce.domain.orders import OrderState
from commerce.secrets import EnvSecrets
from commerce.settings import Settings
from emulators.local_secrets import new_service_account_key
from emulators.release_seed import make_sample_artifacts
from tests.support import emulators as emu
from tests.support import factories

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "performance.md"
HEADING = "## Download redemption"
TARGET = 1.5


@contextlib.contextmanager
def emulators(log_dir: Path) -> Iterator[None]:
    with emu.firestore_emulator(log_dir), emu.storage_emulator(log_dir):
        yield


def measure(run: Callable[[int], Any], count: int) -> list[float]:
    samples = []
    for i in range(count):
        start = time.perf_counter()
        run(i)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of each")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, emulators(Path(tmp)):
        signer_file = Path(tmp) / "signer.json"
        signer_file.write_text(json.dumps(new_service_account_key(emu.TEST_PROJECT)))
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            environment="local",
            gcp_project=emu.TEST_PROJECT,
            storefront_url="http://shop.test",
            public_base_url="http://functions.test",
            artifacts_bucket=emu.TEST_BUCKET,
            url_signing_key_file=str(signer_file),
            download_rate_limit_per_token=100,
            download_rate_limit_per_network=1_000_000,
        )
        container = Container(
            settings, clock=SystemClock(), secrets=EnvSecrets(dict(factories.TEST_SECRETS))
        )
        emu.reset_firestore(os.environ[emu.FIRESTORE_ENV], emu.TEST_PROJECT)
        store: ArtifactStore = container.artifacts
        for blob in store.client.list_blobs(settings.artifacts_bucket):
            blob.delete()
        container.publisher.publish(make_sample_artifacts(Path(tmp) / "dist"), "1.0.0")

        total = args.requests * args.rounds
        tokens = []
        now = container.clock.now()
        for n in range(total + 20):
            bought = factories.purchase(
                container.keys, OrderState.FULFILLED, order_id=f"cs_bench_{n:06d}", now=now
            )
            container.orders.put(bought.order)
            assert bought.license is not None
            container.licenses.put(bought.license)
            grant = bought.grants[0]
            container.download_tokens.put(grant)
            tokens.append(bought.tokens[0])

        service = container.download_service
        object_name = "releases/1.0.0/genx-1.0.0-linux-x86_64.tar.gz"
        baseline_ref = container.db.collection("bench").document("baseline")
        baseline_ref.set({"n": 0})

        def baseline(_: int) -> None:
            from google.cloud import firestore

            @firestore.transactional  # the library's own transaction: begin, read, commit
            def work(tx: Any) -> None:
                snapshot = baseline_ref.get(transaction=tx)
                tx.set(baseline_ref, {"n": int((snapshot.to_dict() or {})["n"]) + 1})

            work(container.db.transaction())
            store.signed_url(object_name, download_name="genx.tar.gz")

        offset = 20

        def redemption(i: int) -> None:
            service.redeem(
                tokens[offset + i],
                "linux-x86_64",
                network=f"198.51.100.{i % 250}/32",
                user_agent="bench/1.0",
            )

        # Warm up both paths (gRPC channel, key loading, release cache).
        for i in range(20):
            baseline(i)
            service.redeem(tokens[i], "linux-x86_64", network="192.0.2.1/32", user_agent="w")

        base_samples: list[float] = []
        redeem_samples: list[float] = []
        for round_ in range(args.rounds):
            base_samples += measure(baseline, args.requests)
            start = round_ * args.requests
            redeem_samples += measure(lambda i, s=start: redemption(s + i), args.requests)
        container.db.close()

    base, redeem = summary(base_samples), summary(redeem_samples)
    ratio_p50 = redeem["p50_ms"] / base["p50_ms"]
    ratio_rps = base["rps"] / redeem["rps"]
    verdict = "within" if ratio_p50 <= TARGET else "OUTSIDE"
    report = [
        HEADING,
        "",
        f"`bench/download_bench.py`, {args.rounds} alternating rounds x {args.requests} "
        "sequential requests each, in-process against the Firestore and storage emulators "
        "(2-core machine shared with other work; compare the ratio, not the absolute numbers).",
        "",
        "| path | p50 ms | p99 ms | req/s |",
        "|---|---:|---:|---:|",
        f"| baseline: 1 bare transaction + 1 V4 URL signature | {base['p50_ms']:.2f} "
        f"| {base['p99_ms']:.2f} | {base['rps']:.0f} |",
        f"| download redemption (checks, rate limits, counted, audited, signed URL) "
        f"| {redeem['p50_ms']:.2f} | {redeem['p99_ms']:.2f} | {redeem['rps']:.0f} |",
        "",
        f"Ratio redemption/baseline: p50 {ratio_p50:.2f}x, throughput {ratio_rps:.2f}x "
        f"(target <= {TARGET}x: {verdict}).",
        "",
        "What redemption does beyond the baseline, all in its one transaction: reads of "
        "the grant and both rate-limit counters (the read also begins the transaction, "
        "so no separate BeginTransaction call), a second batched read (order and "
        "license, whose ids come from the grant; read live at every redemption), four "
        "writes instead of one (network counter, token counter, redemption count, audit "
        "entry) and model validation of three documents: three round trips, like the "
        "baseline's begin, read and commit. The latest release is cached per process "
        "for 30 s and the URL signature is the same as the baseline's.",
        "",
    ]
    text = "\n".join(report)
    print(text)
    if args.write_docs:
        write_section(DOCS, HEADING, text)


if __name__ == "__main__":
    main()
