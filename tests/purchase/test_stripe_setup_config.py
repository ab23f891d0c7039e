"""`make stripe-setup` talks to the Stripe account the local functions use: the key and
the API address travel together (the shell's, else the local stack's: the generated
key with the double's address, or the `.env` that switches to Stripe test mode)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from emulators import stripe_setup

LOCAL_KEY = "sk_test_local_generated"
DOUBLE = "http://127.0.0.1:9314"


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A checkout as `make dev` leaves it; main() is given it instead of the real one."""
    local = tmp_path / ".local"
    local.mkdir()
    (local / "secrets.env").write_text(f"STRIPE_SECRET_KEY={LOCAL_KEY}\n", encoding="utf-8")
    (local / "stack.env").write_text(f"STRIPE_API_BASE={DOUBLE}\n", encoding="utf-8")
    monkeypatch.setattr(stripe_setup, "CHECKOUT", tmp_path, raising=False)
    for name in ("STRIPE_SECRET_KEY", "STRIPE_API_BASE"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture
def used(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """The (key, API address) main() builds its Stripe client with; no network."""
    calls: list[tuple[str, str]] = []

    def client_for(secret_key: str, api_base: str = "") -> Any:
        calls.append((secret_key, api_base))
        return object()

    monkeypatch.setattr(stripe_setup, "client_for", client_for)
    monkeypatch.setattr(
        stripe_setup,
        "ensure_catalog",
        lambda client, **_: stripe_setup.Catalog("genx", "price_1", price_created=False),
    )
    return calls


def test_with_nothing_in_the_shell_the_local_key_goes_to_the_double(
    checkout: Path, used: list[tuple[str, str]]
) -> None:
    assert stripe_setup.main([]) == 0
    assert used == [(LOCAL_KEY, DOUBLE)]


def test_a_test_mode_key_in_dot_env_goes_to_stripe_itself(
    checkout: Path, used: list[tuple[str, str]]
) -> None:
    (checkout / ".env").write_text(
        "STRIPE_SECRET_KEY=sk_test_from_dot_env\nSTRIPE_API_BASE=\n", encoding="utf-8"
    )
    # What the launcher writes when .env empties STRIPE_API_BASE (it merges .env).
    (checkout / ".local" / "stack.env").write_text("STRIPE_API_BASE=\n", encoding="utf-8")

    assert stripe_setup.main([]) == 0
    assert used == [("sk_test_from_dot_env", "")]


def test_a_key_in_the_shell_goes_where_the_shell_or_the_option_says(
    checkout: Path, used: list[tuple[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_from_shell")

    assert stripe_setup.main([]) == 0
    assert stripe_setup.main(["--api-base", "http://127.0.0.1:12111"]) == 0
    assert used == [("sk_test_from_shell", ""), ("sk_test_from_shell", "http://127.0.0.1:12111")]


def test_stripe_api_base_in_the_shell_chooses_the_address_for_the_local_key(
    checkout: Path, used: list[tuple[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRIPE_API_BASE", "http://127.0.0.1:12111")

    assert stripe_setup.main([]) == 0
    assert used == [(LOCAL_KEY, "http://127.0.0.1:12111")]
