"""`make smoke` against the whole local stack: passes when it is up, fails when a
function is down, when the license API's answer does not verify with the public key we
hold, and when the re-send form stops giving its neutral answer."""

from __future__ import annotations

import dataclasses

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from commerce.secrets import EnvSecrets
from commerce.signing import Signer, b64url
from emulators import stack as local_stack
from infra.smoke import Endpoints, local_public_key, main, run_smoke

CHECKS = 7


def endpoints_of(e2e_stack) -> Endpoints:
    return dataclasses.replace(
        Endpoints.from_stack_env(e2e_stack.env), storefront=e2e_stack.storefront
    )


def public_key_of(e2e_stack) -> str:
    """The public half of the seed the stack's functions sign with."""
    return Signer(EnvSecrets(dict(e2e_stack.env))).public_key_b64()


def test_smoke_passes_against_the_running_local_stack(e2e_stack):
    results = run_smoke(endpoints_of(e2e_stack), license_public_key=public_key_of(e2e_stack))
    assert [r.name for r in results if not r.ok] == [], results
    assert len(results) == CHECKS
    details = {r.name: r.detail for r in results}
    assert "NOT_FOUND" in details["license API signs"]
    assert "bound to our nonce and key" in details["license API signs"]
    assert "202" in details["resend is neutral"]


def test_smoke_fails_when_a_function_is_down(e2e_stack):
    dead = f"http://127.0.0.1:{local_stack.free_port()}"  # nothing listens there
    endpoints = dataclasses.replace(endpoints_of(e2e_stack), download=dead)
    results = {r.name: r for r in run_smoke(endpoints, license_public_key=public_key_of(e2e_stack))}
    assert not results["bogus download token"].ok
    assert "refused" in results["bogus download token"].detail.lower()
    assert all(r.ok for name, r in results.items() if name != "bogus download token")


def test_smoke_refuses_a_license_answer_signed_by_another_key(e2e_stack):
    stranger = Ed25519PrivateKey.generate().public_key()
    other_key = b64url(stranger.public_bytes(Encoding.Raw, PublicFormat.Raw))

    results = {r.name: r for r in run_smoke(endpoints_of(e2e_stack), license_public_key=other_key)}

    assert not results["license API signs"].ok
    assert "UNKNOWN_KEY" in results["license API signs"].detail


def test_smoke_fails_the_license_check_without_a_public_key(e2e_stack):
    results = {r.name: r for r in run_smoke(endpoints_of(e2e_stack))}

    assert not results["license API signs"].ok
    assert "--license-public-key" in results["license API signs"].detail


def test_smoke_fails_when_the_license_api_or_resend_answers_something_else(e2e_stack):
    # Both pointed at the order-status function: unsigned answers, no neutral 202.
    wrong = endpoints_of(e2e_stack).order_status
    endpoints = dataclasses.replace(endpoints_of(e2e_stack), license_api=wrong, resend=wrong)

    results = {r.name: r for r in run_smoke(endpoints, license_public_key=public_key_of(e2e_stack))}

    assert not results["license API signs"].ok
    assert "UNSIGNED" in results["license API signs"].detail
    assert not results["resend is neutral"].ok


def test_smoke_fails_when_the_bogus_key_is_not_one_the_shop_could_have_sold(e2e_stack):
    # Another shop's prefix: the API answers INVALID_KEY, so the lookup never ran.
    results = {
        r.name: r
        for r in run_smoke(
            endpoints_of(e2e_stack),
            license_public_key=public_key_of(e2e_stack),
            license_key_prefix="ACME",
        )
    }

    assert not results["license API signs"].ok
    assert "INVALID_KEY" in results["license API signs"].detail


def test_the_local_public_key_is_the_one_the_stack_signs_with(e2e_stack, tmp_path):
    (tmp_path / "secrets.env").write_text(
        f"SIGNING_PRIVATE_KEY={e2e_stack.env['SIGNING_PRIVATE_KEY']}\n", encoding="utf-8"
    )
    assert local_public_key(tmp_path, root=tmp_path) == public_key_of(e2e_stack)
    assert local_public_key(tmp_path / "missing", root=tmp_path / "missing") is None


def test_smoke_command_exits_non_zero_without_a_running_stack(tmp_path, capsys):
    try:
        code = main(["--local", "--local-dir", str(tmp_path)])
    except SystemExit as exit_:
        code = exit_.code
    assert code not in (0, None)
