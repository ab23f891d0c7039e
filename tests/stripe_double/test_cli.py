"""Starting the double as a program: options from the command line or the environment."""

from __future__ import annotations

import subprocess
import sys

import requests

from .conftest import REPO_ROOT


def test_webhook_url_without_a_secret_is_refused_at_start() -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "emulators.stripe_double", "--port", "0",
         "--webhook-url", "http://127.0.0.1:9/hook"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip

    assert finished.returncode != 0
    assert "STRIPE_WEBHOOK_SECRET" in finished.stderr


def test_options_are_read_from_the_environment() -> None:
    environment = {
        "PATH": "/usr/bin:/bin",
        "STRIPE_DOUBLE_PORT": "0",
        "STRIPE_DOUBLE_WEBHOOK_URL": "http://127.0.0.1:9/a, http://127.0.0.1:9/b",
        "STRIPE_WEBHOOK_SECRET": "whsec_from_environment",
    }
    with subprocess.Popen(
        [sys.executable, "-m", "emulators.stripe_double", "--public-url", "http://shop.test:1"],
        cwd=REPO_ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True,
    ) as process:  # fmt: skip
        try:
            assert process.stdout is not None
            url = process.stdout.readline().strip().rsplit(" ", 1)[1]
            config = requests.get(f"{url}/_double/config", timeout=10).json()
        finally:
            process.terminate()
            process.wait(timeout=10)

    assert config["webhook_urls"] == ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"]
    assert config["webhook_secret_set"] is True
    assert config["public_url"] == "http://shop.test:1"
    assert url.startswith("http://127.0.0.1:")
