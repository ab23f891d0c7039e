"""What `make dev` writes into `.local/` is enough for the operator CLI's settings, and
the CLI finds it from where an operator stands."""

from __future__ import annotations

from pathlib import Path

import pytest

from commerce import local_stack
from commerce.secrets import EnvSecrets, SecretName
from commerce.settings import Environment, load_settings
from emulators import local_secrets, stack


def write_dev_files(root: Path) -> None:
    """`.local/` as `make dev` leaves it: generated secrets, and the stack's addresses."""
    local = root / ".local"
    env = stack.merged_environment(stack.configured_ports(), local, dotenv=None, base={})
    (local / "stack.env").write_text(
        "".join(f"{k}={v}\n" for k, v in stack.printable_env(env).items()), encoding="utf-8"
    )


def test_the_files_of_a_dev_stack_make_valid_local_settings_with_every_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_dev_files(tmp_path)
    values = local_stack.environment_of(tmp_path)
    for name in ("ENVIRONMENT", "GCP_PROJECT", "SECRETS_BACKEND", "FIRESTORE_EMULATOR_HOST"):
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)

    settings = load_settings()

    assert settings.environment is Environment.LOCAL
    assert settings.gcp_project == stack.LOCAL_PROJECT
    assert settings.url_signing_key_file == str(tmp_path / ".local" / "url-signer.json")
    secrets = EnvSecrets(values)
    for name in (SecretName.LICENSE_KEY_PEPPER, SecretName.KEY_DERIVATION_SECRET):
        assert secrets.get(name)


def test_stack_env_itself_says_it_is_a_local_environment(tmp_path: Path) -> None:
    write_dev_files(tmp_path)

    written = local_secrets.read_env_file(tmp_path / ".local" / "stack.env")

    assert written["ENVIRONMENT"] == "local"
    assert written["SECRETS_BACKEND"] == "env"


def test_the_users_env_file_overrides_secrets_and_the_stack_overrides_both(
    tmp_path: Path,
) -> None:
    (tmp_path / ".local").mkdir()
    (tmp_path / ".local" / "secrets.env").write_text("STRIPE_SECRET_KEY=generated\nA=secrets\n")
    (tmp_path / ".env").write_text("STRIPE_SECRET_KEY=from-dotenv\nA=dotenv\n")
    (tmp_path / ".local" / "stack.env").write_text("A=stack\n")

    values = local_stack.environment_of(tmp_path)

    assert values["STRIPE_SECRET_KEY"] == "from-dotenv"
    assert values["A"] == "stack"
    assert values["ENVIRONMENT"] == "local"  # stack.env of an older launcher lacks it


def test_the_stack_is_found_from_a_sub_directory_before_the_package_checkout(
    tmp_path: Path,
) -> None:
    here = tmp_path / "checkout" / "docs" / "runbooks"
    here.mkdir(parents=True)
    (tmp_path / "checkout" / ".local").mkdir()
    (tmp_path / "checkout" / ".local" / "stack.env").write_text("GCP_PROJECT=demo-genx\n")
    package_file = tmp_path / "other" / "shared" / "commerce" / "cli_support.py"

    roots = local_stack.candidate_roots(here, package_file)

    assert local_stack.find_root(roots) == tmp_path / "checkout"
    assert roots[-1] == tmp_path / "other"
    assert local_stack.find_root([tmp_path / "other"]) is None
