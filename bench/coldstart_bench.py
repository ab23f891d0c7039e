"""Cold start of the delivery functions: process start to first answer.

Each function runs under the functions-framework in a fresh subprocess on
127.0.0.1 and is polled until it answers its real first request (the download
function redeems a real link, so its lazy imports, key loading and first Firestore
and signing calls are included). Baseline, same run: a bare function whose module
imports the same Google clients at load time and answers "ok". Runs alternate;
the median of N runs is reported. Target: each function within 1.2x of its baseline.

    .venv/bin/python -m bench.coldstart_bench [--runs 5] [--write-docs]

Every process is stopped by its PID.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.common import write_section
from commerce.bootstrap import Container
from commerce.clock import SystemClock
from commerce.domain.orders import OrderState
from commerce.secrets import EnvSecrets
from commerce.settings import Settings
from emulators.local_secrets import new_service_account_key
from emulators.release_seed import make_sample_artifacts
from emulators.stack import free_port
from tests.support import emulators as emu
from tests.support import factories

ROOT = Path(__file__).resolve().parents[1]
MAIN = ROOT / "functions" / "main.py"
DOCS = ROOT / "docs" / "performance.md"
HEADING = "## Cold start"
TARGET = 1.2
FRAMEWORK = str(Path(sys.executable).parent / "functions-framework")


class _KeepRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # the 302 itself is the download function's answer


_NO_REDIRECTS = urllib.request.build_opener(_KeepRedirects)


@dataclass(frozen=True)
class Case:
    function: str
    method: str
    path: str
    body: bytes | None
    clients: tuple[str, ...]  # what the baseline imports at module load


def bare_source(clients: tuple[str, ...]) -> str:
    imports = "\n".join(f"import {module}  # noqa: F401" for module in clients)
    return (
        f"import functions_framework\n{imports}\n\n"
        "@functions_framework.http\ndef bare(request):\n    return 'ok'\n"
    )


def first_answer_ms(
    target: str, source: Path, method: str, path: str, body: bytes | None, env: Mapping[str, str]
) -> tuple[float, int]:
    port = free_port()
    argv = [FRAMEWORK, "--target", target, "--source", str(source), "--host", "127.0.0.1",
            "--port", str(port)]  # fmt: skip
    start = time.perf_counter()
    process = subprocess.Popen(
        argv, env=dict(env), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = start + 60
        while time.perf_counter() < deadline:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}{path}", data=body, method=method,
                headers={"Content-Type": "application/json"},
            )  # fmt: skip
            try:
                with _NO_REDIRECTS.open(request, timeout=30) as response:
                    status = response.status
            except urllib.error.HTTPError as error:
                status = error.code
            except (ConnectionError, urllib.error.URLError):
                time.sleep(0.005)
                continue
            return (time.perf_counter() - start) * 1000, status
        raise RuntimeError(f"{target} did not answer within 60 s")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with emu.firestore_emulator(tmp), emu.storage_emulator(tmp):
            signer_file = tmp / "signer.json"
            signer_file.write_text(json.dumps(new_service_account_key(emu.TEST_PROJECT)))
            env = {
                **os.environ,
                "ENVIRONMENT": "local",
                "GCP_PROJECT": emu.TEST_PROJECT,
                "STOREFRONT_URL": "http://shop.test",
                "PUBLIC_BASE_URL": "http://functions.test",
                "ARTIFACTS_BUCKET": emu.TEST_BUCKET,
                "URL_SIGNING_KEY_FILE": str(signer_file),
                "SECRETS_BACKEND": "env",
                "DOWNLOAD_RATE_LIMIT_PER_NETWORK": "100000",
                "DOWNLOAD_MAX_REDEMPTIONS": "100",
                "PYTHONPATH": str(ROOT),
                **factories.TEST_SECRETS,
            }
            settings = Settings(  # type: ignore[call-arg]
                _env_file=None,
                **{k.lower(): v for k, v in env.items() if k.lower() in Settings.model_fields},
            )
            container = Container(
                settings, clock=SystemClock(), secrets=EnvSecrets(dict(factories.TEST_SECRETS))
            )
            emu.reset_firestore(os.environ[emu.FIRESTORE_ENV], emu.TEST_PROJECT)
            for blob in container.artifacts.client.list_blobs(settings.artifacts_bucket):
                blob.delete()
            container.publisher.publish(make_sample_artifacts(tmp / "dist"), "1.0.0")
            tokens = []
            for n in range(args.runs):
                bought = factories.purchase(
                    container.keys,
                    OrderState.FULFILLED,
                    order_id=f"cs_cold_{n:04d}",
                    now=container.clock.now(),
                )
                container.orders.put(bought.order)
                assert bought.license is not None
                container.licenses.put(bought.license)
                container.download_tokens.put(bought.grants[0])
                tokens.append(bought.tokens[0])
            container.db.close()

            cases = [
                Case("download", "GET", "/d/{token}?platform=linux-x86_64", None,
                     ("google.cloud.firestore", "google.cloud.storage")),
                Case("send_email", "POST", "/", b'{"job_id": "email_cold_missing"}',
                     ("google.cloud.firestore",)),
                Case("email_sweeper", "POST", "/", b"{}",
                     ("google.cloud.firestore", "google.cloud.tasks_v2")),
            ]  # fmt: skip
            rows = []
            for case in cases:
                bare = tmp / f"bare_{case.function}.py"
                bare.write_text(bare_source(case.clients))
                real_ms, base_ms, statuses = [], [], set()
                for run in range(args.runs):
                    path = case.path.format(token=tokens[run])
                    base, _ = first_answer_ms("bare", bare, "GET", "/", None, env)
                    real, status = first_answer_ms(
                        case.function, MAIN, case.method, path, case.body, env
                    )
                    base_ms.append(base)
                    real_ms.append(real)
                    statuses.add(status)
                rows.append(
                    (case, statistics.median(base_ms), statistics.median(real_ms), statuses)
                )

    lines = [
        HEADING,
        "",
        f"`bench/coldstart_bench.py`: functions-framework subprocess on 127.0.0.1, process "
        f"start to first answer, median of {args.runs} alternating runs; the function answers "
        "its real first request (download: a real redemption on the emulators). Baseline: a "
        "bare function importing the same Google clients at module load.",
        "",
        "| function | baseline imports | baseline ms | function ms | ratio | first status |",
        "|---|---|---:|---:|---:|---|",
    ]
    for case, base, real, statuses in rows:
        ratio = real / base
        mark = "" if ratio <= TARGET else " (over target)"
        lines.append(
            f"| `{case.function}` | {', '.join(case.clients)} | {base:.0f} | {real:.0f} "
            f"| {ratio:.2f}x{mark} | {', '.join(map(str, sorted(statuses)))} |"
        )
    lines += [
        "",
        f"Target: each function within {TARGET}x of its baseline. `download` never imports "
        "stripe, sendgrid or the Tasks client (checked by "
        "tests/delivery/test_functions.py).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write_docs:
        write_section(DOCS, HEADING, text)


if __name__ == "__main__":
    main()
