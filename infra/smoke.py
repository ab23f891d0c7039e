"""Smoke test of a running shop: `make smoke BASE_URL=https://shop.example.com`.

Checks, with plain HTTP: the storefront pages answer, checkout creates a (test-mode)
session, the webhook refuses an unsigned request, a bogus download token gets 404,
order status answers, the license API answers a well-formed key nobody bought with a
signed NOT_FOUND that verifies with the shop's public key and is bound to our call
(nonce, operation, key), and the re-send form gives an unknown address the neutral 202.
Exits non-zero when any check fails.

Only the standard library, except the license check: it makes the key and verifies the
answer with the shop's own code (`commerce.domain.license_keys` and the reference
verifier `commerce.licensing.verifier`, which needs `cryptography`; `make venv`
installs both). With `--local`, the signing key also comes from that code.

Endpoints: with `--base-url` the load balancer's layout (infra/terraform: `/api/...`,
`/d/<token>`); with `--local` the URLs of the stack `make dev` is running (read from
`.local/stack.json`). `--skip-checkout` leaves out the one check that creates a
Checkout Session (use it against production with live keys). The license API's
public key comes from `--license-public-key` or `LICENSE_PUBLIC_KEY` (base64url, the
key printed at first deploy and shipped in the plugin); with `--local` it is derived
from the local stack's own signing seed.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import secrets
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TIMEOUT = 15.0


@dataclass(frozen=True)
class Endpoints:
    storefront: str
    checkout: str
    webhook: str
    download: str  # base: the token is appended after /d/
    order_status: str
    license_api: str  # base: the operation is appended (/validate)
    resend: str

    @classmethod
    def behind_load_balancer(cls, base_url: str) -> Endpoints:
        base = base_url.rstrip("/")
        return cls(
            storefront=base,
            checkout=f"{base}/api/checkout",
            webhook=f"{base}/api/webhook/stripe",
            download=base,
            order_status=f"{base}/api/order-status",
            license_api=f"{base}/api/license",
            resend=f"{base}/api/resend",
        )

    @classmethod
    def from_stack_env(cls, env: Mapping[str, str]) -> Endpoints:
        return cls(
            storefront=env["STOREFRONT_URL"].rstrip("/"),
            checkout=env["CHECKOUT_URL"],
            webhook=env["STRIPE_WEBHOOK_URL"],
            download=env["PUBLIC_BASE_URL"].rstrip("/"),
            order_status=env["ORDER_STATUS_URL"],
            license_api=env["LICENSE_API_URL"].rstrip("/"),
            resend=env["RESEND_LINKS_URL"],
        )


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]  # names lower-cased
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


def request(
    url: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    if not url.startswith(("http://", "https://")):
        raise AssertionError(f"not an http(s) URL: {url}")
    req = urllib.request.Request(  # noqa: S310 - scheme checked above
        url, data=body, method=method, headers=dict(headers or {})
    )
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(req, timeout=TIMEOUT) as response:
            return Answer(response.status, _lower(response.headers.items()), response.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, _lower(error.headers.items()), error.read())


def _lower(items: Any) -> dict[str, str]:
    return {str(name).lower(): str(value) for name, value in items}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _check_storefront(ep: Endpoints) -> str:
    pages = ["/", "/success.html", "/cancel.html", "/resend.html", "/de/"]
    for page in pages:
        answer = request(ep.storefront + page)
        kind = answer.headers.get("content-type", "")
        if answer.status != 200 or "html" not in kind:
            raise AssertionError(f"{page} answered {answer.status} {kind}")
    return f"{len(pages)} pages answer 200 text/html"


def _check_checkout(ep: Endpoints) -> str:
    answer = request(
        ep.checkout,
        method="POST",
        body=json.dumps({"locale": "en"}).encode(),
        headers={"Content-Type": "application/json", "Origin": ep.storefront},
    )
    data = answer.json() or {}
    if answer.status != 200 or not str(data.get("id", "")).startswith("cs_"):
        raise AssertionError(f"answered {answer.status}: {answer.body[:200]!r}")
    if not str(data.get("url", "")).startswith("http"):
        raise AssertionError("no session url in the answer")
    if data["id"].startswith("cs_live_"):
        return f"LIVE session {data['id'][:14]}... created (use --skip-checkout in production)"
    return f"session {data['id'][:14]}... created"


def _check_webhook_refuses_unsigned(ep: Endpoints) -> str:
    event = {"id": "evt_smoke_" + secrets.token_hex(6), "type": "checkout.session.completed"}
    answer = request(
        ep.webhook,
        method="POST",
        body=json.dumps(event).encode(),
        headers={"Content-Type": "application/json"},
    )
    code = (answer.json() or {}).get("error")
    if answer.status != 400 or code != "invalid_signature":
        raise AssertionError(f"answered {answer.status} {code!r}, expected 400 invalid_signature")
    return "unsigned event refused with 400 invalid_signature"


def _check_bogus_download(ep: Endpoints) -> str:
    bogus = secrets.token_urlsafe(32)
    answer = request(f"{ep.download}/d/{bogus}", headers={"Accept": "application/json"})
    code = (answer.json() or {}).get("error")
    if answer.status != 404 or code != "token_unknown":
        raise AssertionError(f"answered {answer.status} {code!r}, expected 404 token_unknown")
    return "unknown token answered 404 token_unknown"


def _check_order_status(ep: Endpoints) -> str:
    session_id = "cs_test_smoke" + secrets.token_hex(8)
    answer = request(
        f"{ep.order_status}?session_id={session_id}", headers={"Origin": ep.storefront}
    )
    data = answer.json() or {}
    if answer.status != 200 or "state" not in data:
        raise AssertionError(f"answered {answer.status}: {answer.body[:200]!r}")
    return f"answered state={data['state']!r}"


def _check_license_api(ep: Endpoints, public_key: str | None, key_prefix: str = "GENX") -> str:
    """A well-formed key nobody bought must get a signed NOT_FOUND: the key parsed, the
    lookup in Firestore ran, and the answer verifies with the public key we hold."""
    if not public_key:
        raise AssertionError(
            "no public key to verify the answer with: pass --license-public-key "
            "or set LICENSE_PUBLIC_KEY (the key printed at first deploy)"
        )
    from commerce.domain.license_keys import generate_key
    from commerce.licensing.verifier import (
        LicenseCall,
        ResponseCheck,
        check_response,
        trusted_keys,
    )

    try:
        keys = trusted_keys(public_key)
    except ValueError as error:
        raise AssertionError(f"the public key is not a base64url Ed25519 key: {error}") from None
    bogus = generate_key(key_prefix)  # random, with a valid check character
    call = LicenseCall("validate", secrets.token_urlsafe(24), key=bogus)
    answer = request(
        f"{ep.license_api}/validate",
        method="POST",
        body=json.dumps({"key": bogus, "nonce": call.nonce}).encode(),
        headers={"Content-Type": "application/json"},
    )
    outcome = check_response(
        answer.body,
        answer.headers.get("x-genx-signature"),
        answer.headers.get("x-genx-key-id"),
        keys,
        request=call,
    )
    if outcome is not ResponseCheck.OK:
        raise AssertionError(f"answered {answer.status}, signature check: {outcome.value}")
    status = (answer.json() or {}).get("status")
    if answer.status != 200 or status != "NOT_FOUND":
        raise AssertionError(
            f"answered {answer.status} {status!r} to a key nobody bought, expected NOT_FOUND"
        )
    key_id = answer.headers.get("x-genx-key-id")
    return f"bogus key answered {status}, signed by key {key_id}, bound to our nonce and key"


def _check_resend_is_neutral(ep: Endpoints) -> str:
    address = f"smoke-{secrets.token_hex(6)}@example.com"  # never bought anything
    answer = request(
        ep.resend,
        method="POST",
        body=json.dumps({"email": address, "locale": "en"}).encode(),
        headers={"Content-Type": "application/json", "Origin": ep.storefront},
    )
    data = answer.json() or {}
    if answer.status != 202 or data.get("status") != "accepted" or not data.get("detail"):
        raise AssertionError(f"answered {answer.status}: {answer.body[:200]!r}")
    return "unknown address answered the neutral 202 accepted"


def run_smoke(
    endpoints: Endpoints,
    *,
    skip_checkout: bool = False,
    license_public_key: str | None = None,
    license_key_prefix: str = "GENX",
) -> list[CheckResult]:
    checks: list[tuple[str, Callable[[Endpoints], str]]] = [
        ("storefront pages", _check_storefront),
        ("checkout session", _check_checkout),
        ("webhook refuses unsigned", _check_webhook_refuses_unsigned),
        ("bogus download token", _check_bogus_download),
        ("order status", _check_order_status),
        (
            "license API signs",
            functools.partial(
                _check_license_api, public_key=license_public_key, key_prefix=license_key_prefix
            ),
        ),
        ("resend is neutral", _check_resend_is_neutral),
    ]
    results = []
    for name, check in checks:
        if skip_checkout and check is _check_checkout:
            results.append(CheckResult(name, True, "skipped (--skip-checkout)"))
            continue
        try:
            results.append(CheckResult(name, True, check(endpoints)))
        except (AssertionError, OSError) as problem:
            results.append(CheckResult(name, False, str(problem) or type(problem).__name__))
    return results


def local_endpoints(local_dir: Path) -> Endpoints:
    state_file = local_dir / "stack.json"
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise SystemExit(
            f"no running stack found ({state_file}); start it with `make dev`"
        ) from None
    return Endpoints.from_stack_env(state["env"])


def local_public_key(local_dir: Path, root: Path = Path()) -> str | None:
    """The public half of the local stack's signing seed (.local/secrets.env, which the
    repository's .env may override, as for the functions); None without a seed."""
    from commerce.secrets import EnvSecrets
    from commerce.signing import Signer
    from emulators.local_secrets import read_env_file

    values = {**read_env_file(local_dir / "secrets.env"), **read_env_file(root / ".env")}
    if not values.get("SIGNING_PRIVATE_KEY"):
        return None
    return Signer(EnvSecrets(values)).public_key_b64()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--base-url", help="the shop's public URL (load balancer layout)")
    where.add_argument("--local", action="store_true", help="the stack `make dev` runs")
    parser.add_argument("--skip-checkout", action="store_true")
    parser.add_argument("--local-dir", default=".local", type=Path)
    parser.add_argument(
        "--license-public-key",
        default=os.environ.get("LICENSE_PUBLIC_KEY"),
        help="base64url Ed25519 public key of the license API (default: $LICENSE_PUBLIC_KEY)",
    )
    parser.add_argument(
        "--license-key-prefix",
        default=os.environ.get("LICENSE_KEY_PREFIX", "GENX"),
        help="the shop's license key prefix (default: $LICENSE_KEY_PREFIX or GENX)",
    )
    args = parser.parse_args(argv)
    public_key = args.license_public_key
    if args.local:
        endpoints = local_endpoints(args.local_dir)
        public_key = public_key or local_public_key(args.local_dir)
    else:
        endpoints = Endpoints.behind_load_balancer(args.base_url)
    results = run_smoke(endpoints, skip_checkout=args.skip_checkout, license_public_key=public_key)
    width = max(len(result.name) for result in results)
    for result in results:
        mark = "ok  " if result.ok else "FAIL"
        print(f"{mark} {result.name:<{width}}  {result.detail}")
    failed = [result for result in results if not result.ok]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
