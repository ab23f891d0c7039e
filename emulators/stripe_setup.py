"""`make stripe-setup`: create or update the shop's Product and its one-time Price.

Idempotent by the Price's lookup key: run it as often as you like against whatever
account the key points at (Stripe test mode, live mode, or the local double). When the
amount or currency changes, a new Price takes over the lookup key (Stripe Prices are
immutable) and the old one is archived. Prints the values to put in `.env`.

    python -m emulators.stripe_setup [--api-base URL] [--amount 4900] [--currency eur]

Which account: with STRIPE_SECRET_KEY in the shell, that key and Stripe itself.
Otherwise the Stripe account the local functions use: `.local/secrets.env`, your `.env`
and `.local/stack.env`, in the launcher's order (the generated key and the double's
address, or the test-mode key and empty STRIPE_API_BASE that `.env` sets). --api-base,
or STRIPE_API_BASE in the shell, always chooses the address (empty = Stripe itself).

`make dev` runs `create_catalog` as a set-up step (see emulators/setup_steps.py), so
the functions get STRIPE_PRICE_ID without anyone copying it.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import stripe

if TYPE_CHECKING:
    from emulators.stack import StackInfo

DEFAULT_PRODUCT_ID = "genx"
DEFAULT_PRODUCT_NAME = "GENX"
DEFAULT_AMOUNT = 4900
DEFAULT_CURRENCY = "eur"
DEFAULT_LOOKUP_KEY = "genx_standard"


@dataclass(frozen=True)
class Catalog:
    product_id: str
    price_id: str
    price_created: bool


def ensure_catalog(
    client: stripe.StripeClient,
    *,
    product_id: str = DEFAULT_PRODUCT_ID,
    product_name: str = DEFAULT_PRODUCT_NAME,
    unit_amount: int = DEFAULT_AMOUNT,
    currency: str = DEFAULT_CURRENCY,
    lookup_key: str = DEFAULT_LOOKUP_KEY,
) -> Catalog:
    """The product (fixed id) and its active one-time price (by lookup key), created or
    updated as needed."""
    try:
        product = client.v1.products.retrieve(product_id)
        if product.name != product_name or not product.active:
            client.v1.products.update(product_id, {"name": product_name, "active": True})
    except stripe.InvalidRequestError as exc:
        if exc.http_status != 404:
            raise
        client.v1.products.create({"id": product_id, "name": product_name})

    existing = client.v1.prices.list({"lookup_keys": [lookup_key], "limit": 1}).data
    current = existing[0] if existing else None
    if (
        current is not None
        and current.active
        and current.product == product_id
        and current.unit_amount == unit_amount
        and current.currency == currency.lower()
        and current.type == "one_time"
    ):
        return Catalog(product_id, current.id, price_created=False)

    price = client.v1.prices.create(
        {
            "product": product_id,
            "currency": currency.lower(),
            "unit_amount": unit_amount,
            "lookup_key": lookup_key,
            "transfer_lookup_key": True,
            "nickname": f"{product_name} one-time",
        }
    )
    if current is not None and current.active:
        client.v1.prices.update(current.id, {"active": False})
    client.v1.products.update(product_id, {"default_price": price.id})
    return Catalog(product_id, price.id, price_created=True)


def client_for(secret_key: str, api_base: str = "") -> stripe.StripeClient:
    return stripe.StripeClient(
        secret_key,
        base_addresses={"api": api_base} if api_base else None,
        max_network_retries=2,
    )


def create_catalog(info: StackInfo) -> dict[str, str]:
    """Set-up step of the local stack: catalog in the double -> STRIPE_PRICE_ID."""
    client = client_for(info.env["STRIPE_SECRET_KEY"], info.urls["stripe_double"])
    catalog = ensure_catalog(
        client,
        product_id=info.env.get("PRODUCT_ID") or DEFAULT_PRODUCT_ID,
        product_name=info.env.get("PRODUCT_NAME") or DEFAULT_PRODUCT_NAME,
    )
    return {"STRIPE_PRICE_ID": catalog.price_id}


CHECKOUT = Path(__file__).resolve().parent.parent


def _account(api_base_option: str | None) -> tuple[str, str]:
    """(secret key, API address): the shell's, else what the local functions get; an
    explicit --api-base or STRIPE_API_BASE in the shell always wins."""
    key = os.environ.get("STRIPE_SECRET_KEY", "")
    api_base = "" if key else None
    if not key:
        from commerce.local_stack import environment_of

        local = environment_of(CHECKOUT)
        key, api_base = local.get("STRIPE_SECRET_KEY", ""), local.get("STRIPE_API_BASE", "")
    if api_base_option is not None:
        return key, api_base_option
    return key, os.environ.get("STRIPE_API_BASE", api_base or "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emulators.stripe_setup", description=__doc__)
    parser.add_argument("--api-base", default=None, help="default: see above")
    parser.add_argument("--product-id", default=os.environ.get("PRODUCT_ID", DEFAULT_PRODUCT_ID))
    parser.add_argument("--name", default=os.environ.get("PRODUCT_NAME", DEFAULT_PRODUCT_NAME))
    parser.add_argument("--amount", type=int, default=DEFAULT_AMOUNT, help="in the minor unit")
    parser.add_argument("--currency", default=DEFAULT_CURRENCY)
    parser.add_argument("--lookup-key", default=DEFAULT_LOOKUP_KEY)
    args = parser.parse_args(argv)
    key, api_base = _account(args.api_base)
    if not key:
        print(
            "STRIPE_SECRET_KEY is not set (shell, .env, or .local/secrets.env of `make dev`)",
            file=sys.stderr,
        )
        return 2
    if key.startswith("sk_live_"):
        print("note: this is a live-mode key; the catalog is created in live mode", file=sys.stderr)
    try:
        catalog = ensure_catalog(
            client_for(key, api_base),
            product_id=args.product_id,
            product_name=args.name,
            unit_amount=args.amount,
            currency=args.currency,
            lookup_key=args.lookup_key,
        )
    except stripe.StripeError as exc:
        print(f"Stripe refused the set-up: {exc.user_message or exc}", file=sys.stderr)
        return 1
    state = "created" if catalog.price_created else "unchanged"
    print(f"# product {catalog.product_id}, price {catalog.price_id} ({state}). Put in .env:")
    print(f"STRIPE_PRICE_ID={catalog.price_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
