"""Options of the double: command line first, then environment, then defaults."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

DEFAULT_PORT = 12111
DEFAULT_API_VERSION = "2026-10-28.endive"  # the version stripe 16.1.0 is pinned to


@dataclass
class Config:
    port: int = DEFAULT_PORT
    webhook_urls: list[str] = field(default_factory=list)
    webhook_secret: str | None = None
    public_url: str | None = None
    retry_base: float = 1.0
    max_attempts: int = 8
    async_delay: float = 3.0
    delivery_timeout: float = 10.0
    api_version: str = DEFAULT_API_VERSION


def split_urls(values: Sequence[str]) -> list[str]:
    urls: list[str] = []
    for value in values:
        urls.extend(part.strip() for part in value.split(",") if part.strip())
    return urls


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m emulators.stripe_double",
        description="Local Stripe test double (products, prices, Checkout, refunds, webhooks). "
        "Binds 127.0.0.1 only.",
    )
    parser.add_argument("--port", type=int, help="port (0 = any free port); env STRIPE_DOUBLE_PORT")
    parser.add_argument(
        "--webhook-url",
        action="append",
        default=[],
        help="where events are POSTed; repeat or comma-separate; env STRIPE_DOUBLE_WEBHOOK_URL",
    )
    parser.add_argument(
        "--webhook-secret", help="signing secret (whsec_...); env STRIPE_WEBHOOK_SECRET"
    )
    parser.add_argument(
        "--public-url",
        help="base URL of the hosted pay page, default http://127.0.0.1:PORT; "
        "env STRIPE_DOUBLE_PUBLIC_URL",
    )
    parser.add_argument(
        "--retry-base",
        type=float,
        default=1.0,
        help="seconds before the 1st retry; doubles each time",
    )
    parser.add_argument(
        "--max-attempts", type=int, default=8, help="delivery attempts per event and URL"
    )
    parser.add_argument(
        "--async-delay", type=float, default=3.0, help="seconds until a delayed payment settles"
    )
    parser.add_argument(
        "--delivery-timeout", type=float, default=10.0, help="seconds per webhook POST"
    )
    parser.add_argument(
        "--api-version", default=DEFAULT_API_VERSION, help="api_version stamped on events"
    )
    return parser


def parse(argv: Sequence[str] | None, environ: Mapping[str, str]) -> Config:
    parser = _parser()
    args = parser.parse_args(argv)
    port = (
        args.port if args.port is not None else int(environ.get("STRIPE_DOUBLE_PORT", DEFAULT_PORT))
    )
    urls = split_urls(args.webhook_url) or split_urls(
        [environ.get("STRIPE_DOUBLE_WEBHOOK_URL", "")]
    )
    secret = args.webhook_secret or environ.get("STRIPE_WEBHOOK_SECRET") or None
    if urls and not secret:
        parser.error(
            "webhook URLs are set but no signing secret: pass --webhook-secret "
            "or set STRIPE_WEBHOOK_SECRET"
        )
    if args.max_attempts < 1 or args.retry_base < 0 or args.async_delay < 0:
        parser.error("--max-attempts must be >= 1; --retry-base and --async-delay >= 0")
    return Config(
        port=port,
        webhook_urls=urls,
        webhook_secret=secret,
        public_url=(args.public_url or environ.get("STRIPE_DOUBLE_PUBLIC_URL") or None),
        retry_base=args.retry_base,
        max_attempts=args.max_attempts,
        async_delay=args.async_delay,
        delivery_timeout=args.delivery_timeout,
        api_version=args.api_version,
    )


def from_environment(argv: Sequence[str] | None = None) -> Config:
    return parse(argv, os.environ)
