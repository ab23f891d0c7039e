"""The environment: what the functions, the Stripe double and the set-up steps get.

Priority, lowest first: the process environment < computed local settings (ports,
emulator hosts, URLs) < `.local/secrets.env` (throw-away secrets) < the user's `.env`.
Each function then gets only the secrets Terraform grants it
(`function_environment`, emulators/stack/functions.py). What is printed or written to
`.local/stack.env` and the state file never holds a secret (`printable_env`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from emulators.local_secrets import ensure_local_secrets, read_env_file
from emulators.stack.functions import FUNCTION_SECRETS
from emulators.stack.ports import HOST, Ports
from emulators.stack.specs import TASKS_LOCATION, TASKS_QUEUE

LOCAL_PROJECT = "demo-genx"
LOCAL_BUCKET = "genx-artifacts-local"
# Secrets never written to the state file or printed (commerce.secrets.SecretName;
# tests/unit/test_local_stack.py checks the two agree).
SECRET_NAMES = frozenset(
    {
        "STRIPE_SECRET_KEY",
        "STRIPE_WEBHOOK_SECRET",
        "LICENSE_KEY_PEPPER",
        "KEY_DERIVATION_SECRET",
        "KEY_DERIVATION_SECRETS_PREVIOUS",
        "SIGNING_PRIVATE_KEY",
        "SENDGRID_API_KEY",
        "PSEUDONYM_KEY",
    }
)


def function_url(ports: Ports, name: str) -> str:
    return f"http://{HOST}:{ports.functions[name]}"


def local_defaults(ports: Ports, local_dir: Path, project: str = LOCAL_PROJECT) -> dict[str, str]:
    """Computed settings for functions and the double (lowest priority)."""
    storefront = f"http://{HOST}:{ports.storefront}"
    env = {
        "ENVIRONMENT": "local",
        "GCP_PROJECT": project,
        "GOOGLE_CLOUD_PROJECT": project,
        "SECRETS_BACKEND": "env",
        "STOREFRONT_URL": storefront,
        "STOREFRONT_ORIGINS": f"{storefront},http://localhost:{ports.storefront}",
        # Links are `{PUBLIC_BASE_URL}/d/<token>`, served by the download function; locally
        # that is the download function's own URL (functions-framework serves any path).
        "PUBLIC_BASE_URL": function_url(ports, "download"),
        "ARTIFACTS_BUCKET": LOCAL_BUCKET,
        "FIRESTORE_EMULATOR_HOST": f"{HOST}:{ports.firestore}",
        "STORAGE_EMULATOR_HOST": f"http://{HOST}:{ports.storage}",
        "TASKS_EMULATOR_HOST": f"{HOST}:{ports.tasks}",
        "TASKS_LOCATION": TASKS_LOCATION,
        "TASKS_QUEUE": TASKS_QUEUE,
        "EMAIL_WORKER_URL": function_url(ports, "send_email"),
        "MAIL_BACKEND": "smtp",
        "SMTP_HOST": HOST,
        "SMTP_PORT": str(ports.maildev_smtp),
        "MAILDEV_URL": f"http://{HOST}:{ports.maildev_web}",
        "STRIPE_API_BASE": f"http://{HOST}:{ports.stripe_double}",
        "STRIPE_PRICE_ID": "",  # filled in by a set-up step (emulators/setup_steps.py)
        "URL_SIGNING_KEY_FILE": str(local_dir / "url-signer.json"),
        "PYTHONUNBUFFERED": "1",
    }
    for name in ports.functions:
        env[f"{name.upper()}_URL"] = function_url(ports, name)
    if "resend_links" in ports.functions:
        env["RESEND_URL"] = function_url(ports, "resend_links")  # Settings.resend_url
    return env


def merged_environment(
    ports: Ports,
    local_dir: Path,
    *,
    dotenv: Path | None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """process env < computed defaults < .local/secrets.env < the user's .env (if any)."""
    ensure_local_secrets(local_dir)
    env = dict(os.environ if base is None else base)
    env.update(local_defaults(ports, local_dir))
    env.update(read_env_file(local_dir / "secrets.env"))
    if dotenv is not None:
        env.update(read_env_file(dotenv))
    return env


def function_environment(name: str, env: Mapping[str, str]) -> dict[str, str]:
    """`env` without the secrets function `name` is not granted in Terraform (all of
    them for a function the table does not know: it fails closed)."""
    granted = FUNCTION_SECRETS.get(name, frozenset())
    return {key: value for key, value in env.items() if key not in SECRET_NAMES - granted}


def public_env(env: Mapping[str, str], keys: Iterable[str]) -> dict[str, str]:
    """The named variables, without secrets (safe for the state file and printing)."""
    return {key: env[key] for key in keys if key in env and key not in SECRET_NAMES}


_PRINTED_ENV = (
    # What `commerce` (the operator CLI) needs besides the secrets to use this stack.
    "ENVIRONMENT",
    "SECRETS_BACKEND",
    "GCP_PROJECT",
    "FIRESTORE_EMULATOR_HOST",
    "STORAGE_EMULATOR_HOST",
    "TASKS_EMULATOR_HOST",
    "ARTIFACTS_BUCKET",
    "STOREFRONT_URL",
    "PUBLIC_BASE_URL",
    "STRIPE_API_BASE",
    "STRIPE_PRICE_ID",
    "SMTP_HOST",
    "SMTP_PORT",
    "MAILDEV_URL",
    "EMAIL_WORKER_URL",
    "TASKS_LOCATION",
    "TASKS_QUEUE",
    "MAIL_BACKEND",
    "URL_SIGNING_KEY_FILE",
)


def printable_env(env: Mapping[str, str]) -> dict[str, str]:
    """The stack's addresses (and every *_URL), never a secret."""
    keys = [*_PRINTED_ENV, *sorted(k for k in env if k.endswith("_URL") and k not in _PRINTED_ENV)]
    return public_env(env, keys)
