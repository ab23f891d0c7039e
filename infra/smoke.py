"""Smoke test of a running shop: `make smoke BASE_URL=https://shop.example.com`.

Checks, with plain HTTP and nothing but the standard library (so it runs anywhere):
the storefront pages answer, checkout creates a (test-mode) session, the webhook
refuses an unsigned request, a bogus download token gets 404, and order status
answers. Exits non-zero when any check fails.

Endpoints: with `--base-url` the load balancer's layout (infra/terraform: `/api/...`,
`/d/<token>`); with `--local` the URLs of the stack `make dev` is running (read from
`.local/stack.json`). `--skip-checkout` leaves out the one check that creates a
Checkout Session (use it against production with live keys).
"""

from __future__ import annotations

import argparse
import json
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

    @classmethod
    def behind_load_balancer(cls, base_url: str) -> Endpoints:
        base = base_url.rstrip("/")
        return cls(
            storefront=base,
            checkout=f"{base}/api/checkout",
            webhook=f"{base}/api/webhook/stripe",
            download=base,
            order_status=f"{base}/api/order-status",
        )

    @classmethod
    def from_stack_env(cls, env: Mapping[str, str]) -> Endpoints:
        return cls(
            storefront=env["STOREFRONT_URL"].rstrip("/"),
            checkout=env["CHECKOUT_URL"],
            webhook=env["STRIPE_WEBHOOK_URL"],
            download=env["PUBLIC_BASE_URL"].rstrip("/"),
            order_status=env["ORDER_STATUS_URL"],
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


def run_smoke(endpoints: Endpoints, *, skip_checkout: bool = False) -> list[CheckResult]:
    checks: list[tuple[str, Callable[[Endpoints], str]]] = [
        ("storefront pages", _check_storefront),
        ("checkout session", _check_checkout),
        ("webhook refuses unsigned", _check_webhook_refuses_unsigned),
        ("bogus download token", _check_bogus_download),
        ("order status", _check_order_status),
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--base-url", help="the shop's public URL (load balancer layout)")
    where.add_argument("--local", action="store_true", help="the stack `make dev` runs")
    parser.add_argument("--skip-checkout", action="store_true")
    parser.add_argument("--local-dir", default=".local", type=Path)
    args = parser.parse_args(argv)
    if args.local:
        endpoints = local_endpoints(args.local_dir)
    else:
        endpoints = Endpoints.behind_load_balancer(args.base_url)
    results = run_smoke(endpoints, skip_checkout=args.skip_checkout)
    width = max(len(result.name) for result in results)
    for result in results:
        mark = "ok  " if result.ok else "FAIL"
        print(f"{mark} {result.name:<{width}}  {result.detail}")
    failed = [result for result in results if not result.ok]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
