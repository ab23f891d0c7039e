"""Configuration of the local stack, its throw-away secrets, and the shared factories."""

from __future__ import annotations

import json
import os
import re
from datetime import timedelta
from pathlib import Path

import pytest

from commerce.domain.orders import OrderState
from commerce.domain.tokens import hash_token
from commerce.secrets import EnvSecrets, SecretName
from commerce.settings import Environment, Settings
from commerce.signing import Signer, verify
from emulators import local_secrets, stack
from emulators.stack import state
from tests.support import factories


def test_dev_ports_are_distinct_and_stay_away_from_8080():
    ports = stack.configured_ports()
    values = [
        ports.firestore,
        ports.storage,
        ports.storefront,
        ports.tasks,
        ports.stripe_double,
        ports.maildev_smtp,
        ports.maildev_web,
        *ports.functions.values(),
    ]

    assert len(set(values)) == len(values)
    assert all(abs(port - 8080) > 10 for port in values)


def test_every_deployed_function_has_a_local_port():
    # The list itself is functions/main.py's (tests/infra/test_function_list.py).
    expected = set(stack.function_names())
    assert expected
    assert expected <= set(stack.configured_ports().functions)


def test_functions_are_the_decorated_top_level_defs_of_main_in_order(tmp_path: Path):
    (tmp_path / "functions").mkdir()
    (tmp_path / "functions" / "main.py").write_text(
        "import functions_framework\n\n"
        "@functions_framework.http\ndef checkout(request): ...\n\n"
        "def helper(request): ...\n\n"
        "@other.http\ndef impostor(request): ...\n\n"
        "@functions_framework.http()\nasync def reconcile(request): ...\n\n"
        "class Holder:\n    @functions_framework.http\n    def inner(self, request): ...\n"
    )

    assert stack.function_names(tmp_path) == ["checkout", "reconcile"]
    assert stack.function_names(tmp_path / "elsewhere") == []


def test_each_local_function_gets_only_the_secrets_terraform_grants_it(tmp_path: Path):
    env = stack.merged_environment(stack.configured_ports(), tmp_path, dotenv=None, base={})
    assert {"STRIPE_SECRET_KEY", "LICENSE_KEY_PEPPER", "SIGNING_PRIVATE_KEY"} <= set(env)

    checkout = stack.function_environment("checkout", env)
    license_api = stack.function_environment("license_api", env)
    download = stack.function_environment("download", env)
    unknown = stack.function_environment("not_a_function", env)

    assert set(checkout) & stack.SECRET_NAMES == {"STRIPE_SECRET_KEY", "PSEUDONYM_KEY"}
    assert set(license_api) & stack.SECRET_NAMES == {
        "SIGNING_PRIVATE_KEY",
        "LICENSE_KEY_PEPPER",
        "PSEUDONYM_KEY",
    }
    # download's only secret keys its rate-limit ids and the audit's network hash
    assert set(download) & stack.SECRET_NAMES == {"PSEUDONYM_KEY"}
    assert set(unknown) & stack.SECRET_NAMES == set()  # fails closed
    assert download["FIRESTORE_EMULATOR_HOST"] == env["FIRESTORE_EMULATOR_HOST"]
    assert set(download) == set(env) - (stack.SECRET_NAMES - {"PSEUDONYM_KEY"})


def test_only_top_level_defs_of_main_count_as_functions(tmp_path: Path):
    (tmp_path / "functions").mkdir()
    (tmp_path / "functions" / "main.py").write_text(
        "def checkout(request):\n    def download(r): ...\n\nasync def reconcile(request): ...\n"
        "def _helper(): ...\n"
    )

    found = stack.defined_functions(["checkout", "download", "reconcile", "order_status"], tmp_path)

    assert found == ["checkout", "reconcile"]


def test_user_env_beats_local_secrets_which_beat_computed_defaults(tmp_path: Path):
    local = tmp_path / ".local"
    local_secrets.ensure_local_secrets(local)
    with (local / "secrets.env").open("a") as handle:
        handle.write("SMTP_HOST=from-secrets\nLOG_LEVEL=from-secrets\n")
    dotenv = tmp_path / ".env"
    dotenv.write_text("# mine\nexport LOG_LEVEL='DEBUG'\n")

    env = stack.merged_environment(stack.configured_ports(), local, dotenv=dotenv, base={})

    assert env["LOG_LEVEL"] == "DEBUG"
    assert env["SMTP_HOST"] == "from-secrets"
    assert env["GCP_PROJECT"] == "demo-genx"


def test_local_environment_makes_valid_settings(tmp_path: Path):
    ports = stack.configured_ports()
    env = stack.merged_environment(ports, tmp_path / ".local", dotenv=None, base={})

    settings = Settings.model_validate({key.lower(): value for key, value in env.items()})

    assert settings.environment is Environment.LOCAL
    assert str(settings.public_base_url).rstrip("/") == env["DOWNLOAD_URL"]
    assert settings.email_worker_url == env["SEND_EMAIL_URL"]
    assert settings.smtp_port == ports.maildev_smtp


def test_printed_environment_never_contains_secrets(tmp_path: Path):
    env = stack.merged_environment(stack.configured_ports(), tmp_path, dotenv=None, base={})

    printed = stack.printable_env(env)

    assert "FIRESTORE_EMULATOR_HOST" in printed
    assert not set(printed) & stack.SECRET_NAMES
    assert not any(
        value in printed.values()
        for value in local_secrets.read_env_file(tmp_path / "secrets.env").values()
    )


def test_local_secrets_are_generated_once_and_usable(tmp_path: Path):
    secrets_path, _ = local_secrets.ensure_local_secrets(tmp_path)
    first = secrets_path.read_text()
    local_secrets.ensure_local_secrets(tmp_path)

    assert secrets_path.read_text() == first
    assert secrets_path.stat().st_mode & 0o077 == 0
    values = local_secrets.read_env_file(secrets_path)
    assert set(values) >= {
        "STRIPE_SECRET_KEY",
        "STRIPE_WEBHOOK_SECRET",
        "LICENSE_KEY_PEPPER",
        "KEY_DERIVATION_SECRET",
        "SIGNING_PRIVATE_KEY",
        "PSEUDONYM_KEY",
    }
    signer = Signer(EnvSecrets(values))
    assert verify(signer.public_key, b"manifest", signer.sign(b"manifest"))
    keys = factories.key_service(values)
    assert keys.material.pepper != keys.material.derivation_secrets[keys.material.current_secret_id]


def test_url_signer_key_file_loads_as_service_account_credentials(tmp_path: Path):
    from google.oauth2 import service_account

    _, signer_path = local_secrets.ensure_local_secrets(tmp_path)

    credentials = service_account.Credentials.from_service_account_file(str(signer_path))

    assert credentials.service_account_email == local_secrets.URL_SIGNER_EMAIL
    assert json.loads(signer_path.read_text())["type"] == "service_account"


@pytest.mark.parametrize("state", list(OrderState))
def test_factory_purchases_are_consistent_in_every_state(state: OrderState):
    keys = factories.key_service()

    bought = factories.purchase(keys, state)

    assert bought.order.state is state
    assert bought.order.customer_id == bought.customer.id
    if bought.license is None:
        assert bought.order.license_id is None
        return
    assert bought.key is not None
    assert keys.key_matches(bought.key, bought.license.key_hash)
    assert bought.order.license_id == bought.license.id
    (grant,), (token,) = bought.grants, bought.tokens
    assert grant.token_hash == hash_token(token)
    assert keys.token_for(grant.token_id, grant.secret_id) == token


def test_fulfilled_sample_purchase_can_be_downloaded_now():
    keys = factories.key_service()
    now = factories.NOW + timedelta(days=3)

    samples = factories.sample_purchases(keys, now)
    fulfilled = [item for item in samples if item.order.state is OrderState.FULFILLED]

    assert len({item.order.state for item in samples}) == len(samples)
    fulfilled[0].grants[0].check_redeemable(now)


def test_env_example_documents_every_setting_and_secret():
    text = (stack.REPO_ROOT / ".env.example").read_text(encoding="utf-8")
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))
    expected = {name.upper() for name in Settings.model_fields} | {
        name.value for name in SecretName
    }

    assert sorted(expected - documented) == []


def test_a_second_launcher_is_refused_while_the_first_holds_the_lock(tmp_path: Path):
    with stack.launcher_lock(tmp_path) as first, stack.launcher_lock(tmp_path) as second:
        assert (first, second) == (True, False)
    with stack.launcher_lock(tmp_path) as after_release:
        assert after_release


def test_status_shows_a_running_process_that_does_not_answer_as_down() -> None:
    closed = stack.free_port()
    record = {
        "pid": os.getpid(),
        "start_ticks": stack.process_start_ticks(os.getpid()),
        "ports": [closed],
    }

    up, words = state.service_health(record)

    assert not up
    assert words == f"DOWN (process runs, not answering on port {closed})"
