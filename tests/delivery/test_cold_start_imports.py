"""What the delivery functions import on a cold start, seen from a fresh interpreter.

Each function deploys from the same main.py, so a module-level import anywhere on its
path is paid by every cold start. These requests send and render nothing, so neither
the mail libraries nor the templates nor the Stripe, SendGrid or Tasks clients nor the
address validator belong in the process afterwards; a redirect needs no link-building
key service either.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from commerce.bootstrap import Container
from commerce.domain.orders import OrderState
from commerce.domain.releases import Release
from tests.delivery.conftest import PUBLIC_BASE, store_purchase
from tests.support import factories
from tests.support.emulators import TEST_BUCKET, TEST_PROJECT

ROOT = Path(__file__).resolve().parents[2]
MAIN = str(ROOT / "functions" / "main.py")

_PROBE = """
import json, sys
from functions_framework import create_app
target, path, body, watched = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5].split(",")
client = create_app(target, sys.argv[1]).test_client()
if body:
    response = client.post(path, data=body, content_type="application/json")
else:
    response = client.get(path)
print(json.dumps({"status": response.status_code,
                  "loaded": [m for m in watched if m in sys.modules]}))
"""
_NEVER_WITHOUT_SENDING = (
    "stripe",
    "sendgrid",
    "google.cloud.tasks_v2",
    "google.cloud.tasks",
    "smtplib",
    "commerce.delivery.email_content",
    "email_validator",  # loaded only where an address is checked (domain.email_address)
)


def _probe(
    target: str, path: str, body: str, watched: tuple[str, ...], **env: str
) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, MAIN, target, path, body, ",".join(watched)],
        env={
            **os.environ,
            "ENVIRONMENT": "local",
            "GCP_PROJECT": TEST_PROJECT,
            "STOREFRONT_URL": "http://shop.test",
            "PUBLIC_BASE_URL": PUBLIC_BASE,
            "ARTIFACTS_BUCKET": TEST_BUCKET,
            "SECRETS_BACKEND": "env",
            "PYTHONPATH": str(ROOT),
            **factories.TEST_SECRETS,
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    outcome: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return outcome


def test_send_email_for_an_unknown_job_loads_no_mail_library_template_or_sdk(
    container: Container,
) -> None:
    outcome = _probe(
        "send_email", "/", json.dumps({"job_id": "email_never_created"}), _NEVER_WITHOUT_SENDING
    )

    assert outcome == {"status": 200, "loaded": []}


def test_email_sweeper_with_nothing_stale_loads_no_mail_library_template_or_sdk(
    container: Container,
) -> None:
    outcome = _probe("email_sweeper", "/", "{}", _NEVER_WITHOUT_SENDING)

    assert outcome == {"status": 200, "loaded": []}


def test_download_redirect_loads_neither_the_key_service_nor_the_e_mail_modules(
    container: Container, release: Release, url_signer_file: str
) -> None:
    # The child process runs on the system clock: issue the link now.
    fresh = factories.purchase(container.keys, OrderState.FULFILLED, now=datetime.now(UTC))
    store_purchase(container, fresh)

    outcome = _probe(
        "download",
        f"/d/{fresh.tokens[0]}?platform=linux-x86_64",
        "",
        ("commerce.keys", "commerce.grants", *_NEVER_WITHOUT_SENDING),
        URL_SIGNING_KEY_FILE=url_signer_file,
    )

    assert outcome == {"status": 302, "loaded": []}
