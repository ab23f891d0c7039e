"""In-memory Stripe account: objects, payments, refunds, disputes, events and their delivery.

Every public method expects the caller to hold `lock` (the HTTP layers do) except the
delivery and settlement jobs, which take it themselves on the scheduler thread.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import objects
from .config import Config, split_urls
from .errors import StripeError, invalid_param, missing_param, no_such
from .objects import JSON, new_id
from .params import (
    as_bool,
    as_dict,
    as_int,
    as_list,
    as_metadata,
    as_optional_str,
    as_str,
    merge_metadata,
    reject_unknown,
    required,
)
from .webhooks import Scheduler, post_event

log = logging.getLogger("stripe_double")

NO_REQUEST: JSON = {"id": None, "idempotency_key": None}
OUTCOMES = ("paid", "declined", "async_success", "async_fail")
LOCALES = frozenset((
    "auto", "bg", "cs", "da", "de", "el", "en", "en-GB", "es", "es-419", "et", "fi", "fil", "fr",
    "fr-CA", "hr", "hu", "id", "it", "ja", "ko", "lt", "lv", "ms", "mt", "nb", "nl", "pl", "pt",
    "pt-BR", "ro", "ru", "sk", "sl", "sv", "th", "tr", "vi", "zh", "zh-HK", "zh-TW",
))  # fmt: skip
_SIMPLE_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

PRODUCT_CREATE = {
    "id", "name", "active", "description", "metadata", "default_price_data", "expand",
    "images", "marketing_features", "package_dimensions", "shippable",
    "statement_descriptor", "tax_code", "unit_label", "url",
}  # fmt: skip
PRODUCT_UPDATE = (PRODUCT_CREATE - {"id", "default_price_data"}) | {"default_price"}
PRICE_CREATE = {
    "currency", "unit_amount", "unit_amount_decimal", "product", "product_data", "lookup_key",
    "transfer_lookup_key", "active", "metadata", "nickname", "recurring", "tax_behavior",
    "billing_scheme", "expand",
}  # fmt: skip
PRICE_UPDATE = {
    "active", "lookup_key", "transfer_lookup_key", "metadata", "nickname", "tax_behavior",
    "expand",
}  # fmt: skip
PRICE_DATA = {"currency", "unit_amount", "unit_amount_decimal", "product", "product_data",
              "recurring", "tax_behavior"}  # fmt: skip
SESSION_CREATE = {
    "mode", "line_items", "success_url", "cancel_url", "customer_email", "client_reference_id",
    "locale", "allow_promotion_codes", "metadata", "payment_intent_data", "expand",
    "expires_at", "billing_address_collection", "customer_creation", "submit_type",
    "payment_method_types", "ui_mode", "automatic_tax", "consent_collection", "custom_text",
    "invoice_creation", "phone_number_collection", "tax_id_collection", "discounts",
    "currency", "payment_method_configuration", "after_expiration", "custom_fields",
}  # fmt: skip
LINE_ITEM = {"price", "price_data", "quantity", "adjustable_quantity", "tax_rates",
             "dynamic_tax_rates"}  # fmt: skip
PAYMENT_INTENT_DATA = {
    "metadata", "description", "receipt_email", "statement_descriptor",
    "statement_descriptor_suffix", "capture_method", "setup_future_usage", "shipping",
    "transfer_group",
}  # fmt: skip
REFUND_CREATE = {"payment_intent", "charge", "amount", "reason", "metadata", "expand",
                 "instructions_email", "refund_application_fee", "reverse_transfer"}  # fmt: skip
REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")
COUPON_CREATE = {"id", "percent_off", "amount_off", "currency", "duration", "duration_in_months",
                 "name", "metadata", "max_redemptions", "redeem_by", "expand"}  # fmt: skip


@dataclass
class Delivery:
    """Attempts to deliver one event to one webhook URL."""

    url: str
    attempts: int = 0
    state: str = "pending"  # pending | delivered | failed
    last_status: int | None = None
    last_error: str | None = None
    next_attempt_at: float | None = None

    def as_json(self) -> JSON:
        return {
            "url": self.url,
            "attempts": self.attempts,
            "state": self.state,
            "last_status": self.last_status,
            "last_error": self.last_error,
            "next_attempt_at": self.next_attempt_at,
        }


@dataclass
class EventRecord:
    event: JSON
    payload: str
    deliveries: list[Delivery] = field(default_factory=list)


@dataclass
class SessionExtras:
    """What Stripe keeps about a session but does not show on it."""

    payment_intent_data: JSON
    payment_intent_metadata: dict[str, str]
    line_items: list[JSON]


class StripeDouble:
    def __init__(self, config: Config, scheduler: Scheduler | None = None) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.scheduler = scheduler or Scheduler()
        self._generation = 0
        self._clear()

    def _clear(self) -> None:
        self.products: dict[str, JSON] = {}
        self.prices: dict[str, JSON] = {}
        self.sessions: dict[str, JSON] = {}
        self.extras: dict[str, SessionExtras] = {}
        self.payment_intents: dict[str, JSON] = {}
        self.charges: dict[str, JSON] = {}
        self.refunds: dict[str, JSON] = {}
        self.disputes: dict[str, JSON] = {}
        self.fraud_warnings: dict[str, JSON] = {}
        self.coupons: dict[str, JSON] = {}
        self.events: dict[str, EventRecord] = {}
        self.idempotency: dict[tuple[str, str], tuple[str, int, str]] = {}

    # ------------------------------------------------------------------ operator
    def public_url(self) -> str:
        return (self.config.public_url or f"http://127.0.0.1:{self.config.port}").rstrip("/")

    def reset(self) -> None:
        self._generation += 1
        self.scheduler.clear()
        self._clear()

    def configure(self, updates: Mapping[str, Any]) -> JSON:
        reject_unknown(
            updates,
            {
                "webhook_url",
                "webhook_secret",
                "retry_base",
                "max_attempts",
                "async_delay",
                "delivery_timeout",
            },
        )
        urls = self.config.webhook_urls
        if "webhook_url" in updates:
            urls = split_urls(
                [as_str(u, "webhook_url") for u in as_list(updates["webhook_url"], "webhook_url")]
            )
        secret = self.config.webhook_secret
        if "webhook_secret" in updates:
            secret = as_optional_str(updates["webhook_secret"], "webhook_secret")
        if urls and not secret:
            raise missing_param("webhook_secret")
        numbers = {}
        for name in ("retry_base", "async_delay", "delivery_timeout"):
            if name in updates:
                try:
                    numbers[name] = float(updates[name])
                except (TypeError, ValueError):
                    raise invalid_param(name, f"Invalid number: {updates[name]}") from None
                if numbers[name] < 0:
                    raise invalid_param(name, f"{name} must be >= 0")
        if "max_attempts" in updates:
            attempts = as_int(updates["max_attempts"], "max_attempts")
            if attempts < 1:
                raise invalid_param("max_attempts", "max_attempts must be >= 1")
            self.config.max_attempts = attempts
        self.config.webhook_urls = urls
        self.config.webhook_secret = secret
        for name, value in numbers.items():
            setattr(self.config, name, value)
        return self.describe_config()

    def describe_config(self) -> JSON:
        return {
            "webhook_urls": list(self.config.webhook_urls),
            "webhook_secret_set": bool(self.config.webhook_secret),
            "retry_base": self.config.retry_base,
            "max_attempts": self.config.max_attempts,
            "async_delay": self.config.async_delay,
            "delivery_timeout": self.config.delivery_timeout,
            "public_url": self.public_url(),
            "api_version": self.config.api_version,
        }

    # ------------------------------------------------------------------ lookups
    def find(self, object_id: str) -> JSON | None:
        for table in (
            self.products,
            self.prices,
            self.sessions,
            self.payment_intents,
            self.charges,
            self.refunds,
            self.disputes,
            self.fraud_warnings,
            self.coupons,
        ):
            if object_id in table:
                return table[object_id]
        record = self.events.get(object_id)
        return record.event if record else None

    def get(self, table: dict[str, JSON], object_name: str, object_id: str, param: str) -> JSON:
        found = table.get(object_id)
        if found is None:
            raise no_such(object_name, object_id, param)
        return found

    def render(self, obj: JSON, expand: Iterable[str] = ()) -> JSON:
        """A copy of `obj` with the `expand` paths replaced by the objects they name."""
        result = copy.deepcopy(obj)
        for path in expand:
            self._expand(result, path.split("."), path)
        return result

    def _expand(self, node: JSON, parts: list[str], path: str) -> None:
        head, rest = parts[0], parts[1:]
        if node.get("object") in ("list", "search_result") and head == "data" and rest:
            for item in node["data"]:
                self._expand(item, rest, path)
            return
        if head == "line_items" and node.get("object") == "checkout.session":
            node["line_items"] = self.line_items_page(node["id"], {})
        elif head not in node:
            raise invalid_param("expand", f"This property cannot be expanded ({path}).")
        value = node.get(head)
        if isinstance(value, str):
            target = self.find(value)
            if target is None:
                raise invalid_param("expand", f"This property cannot be expanded ({path}).")
            node[head] = copy.deepcopy(target)
        if rest and isinstance(node.get(head), dict):
            self._expand(node[head], rest, path)

    @staticmethod
    def newest_first(items: Iterable[JSON]) -> list[JSON]:
        return list(reversed(list(items)))

    # ------------------------------------------------------------------ products
    def create_product(self, params: Mapping[str, Any]) -> JSON:
        reject_unknown(params, PRODUCT_CREATE)
        as_str(required(params, "name"), "name")
        product_id = as_optional_str(params.get("id"), "id") or new_id("prod_", 14)
        if product_id in self.products:
            raise StripeError(
                400, "Product already exists.", param="id", code="resource_already_exists"
            )
        product = objects.product(params, product_id, as_metadata(params.get("metadata")))
        if "active" in params:
            product["active"] = as_bool(params["active"], "active")
        product["images"] = [as_str(i, "images") for i in as_list(params.get("images"), "images")]
        self.products[product_id] = product
        if "default_price_data" in params:
            data = as_dict(params["default_price_data"], "default_price_data")
            price = self._new_price(data, "default_price_data", product_id=product_id)
            product["default_price"] = price["id"]
        return product

    def update_product(self, product_id: str, params: Mapping[str, Any]) -> JSON:
        product = self.get(self.products, "product", product_id, "id")
        reject_unknown(params, PRODUCT_UPDATE)
        for name in ("name", "description", "statement_descriptor", "unit_label", "url"):
            if name in params:
                product[name] = as_optional_str(params[name], name)
        if "active" in params:
            product["active"] = as_bool(params["active"], "active")
        if "images" in params:
            product["images"] = [as_str(i, "images") for i in as_list(params["images"], "images")]
        if "default_price" in params:
            price_id = as_optional_str(params["default_price"], "default_price")
            if price_id is not None:
                price = self.get(self.prices, "price", price_id, "default_price")
                if price["product"] != product_id:
                    raise invalid_param("default_price", "The price must belong to this product.")
            product["default_price"] = price_id
        if "metadata" in params:
            product["metadata"] = merge_metadata(product["metadata"], params["metadata"])
        product["updated"] = objects.now()
        return product

    def list_products(self, params: Mapping[str, Any]) -> JSON:
        reject_unknown(
            params,
            {
                "active",
                "ids",
                "created",
                "limit",
                "starting_after",
                "ending_before",
                "expand",
                "shippable",
                "url",
            },
        )
        matches = objects.created_filter(params.get("created"))
        items = [p for p in self.newest_first(self.products.values()) if matches(p["created"])]
        if "active" in params:
            active = as_bool(params["active"], "active")
            items = [p for p in items if p["active"] is active]
        if "ids" in params:
            ids = set(as_list(params["ids"], "ids"))
            items = [p for p in items if p["id"] in ids]
        return objects.list_page(items, params, "/v1/products")

    # ------------------------------------------------------------------ prices
    def create_price(self, params: Mapping[str, Any]) -> JSON:
        reject_unknown(params, PRICE_CREATE)
        lookup_key = as_optional_str(params.get("lookup_key"), "lookup_key")
        transfer = as_bool(params.get("transfer_lookup_key", False), "transfer_lookup_key")
        self._claim_lookup_key(lookup_key, transfer)
        price = self._new_price(params, "", product_id=None)
        price["lookup_key"] = lookup_key
        price["nickname"] = as_optional_str(params.get("nickname"), "nickname")
        price["metadata"] = as_metadata(params.get("metadata"))
        if "active" in params:
            price["active"] = as_bool(params["active"], "active")
        return price

    def _new_price(
        self, data: Mapping[str, Any], prefix: str, *, product_id: str | None, active: bool = True
    ) -> JSON:
        """A price from `currency`, `unit_amount` and `product` or `product_data[name]`."""

        def name(field_name: str) -> str:
            return f"{prefix}[{field_name}]" if prefix else field_name

        if prefix:
            reject_unknown(data, PRICE_DATA, prefix)
        if product_id is None:
            if data.get("product"):
                product_id = as_str(data["product"], name("product"))
                if product_id not in self.products:
                    raise StripeError(
                        400,
                        f"No such product: '{product_id}'",
                        param=name("product"),
                        code="resource_missing",
                    )
            elif data.get("product_data"):
                product_data = as_dict(data["product_data"], name("product_data"))
                reject_unknown(
                    product_data,
                    {
                        "name",
                        "description",
                        "metadata",
                        "images",
                        "tax_code",
                        "unit_label",
                        "statement_descriptor",
                    },
                    name("product_data"),
                )
                if not product_data.get("name"):
                    raise missing_param(name("product_data") + "[name]")
                product_id = self.create_product(product_data)["id"]
            else:
                raise missing_param(name("product"))
        if not data.get("currency"):
            raise missing_param(name("currency"))
        currency = as_str(data["currency"], name("currency"))
        if not re.fullmatch(r"[A-Za-z]{3}", currency):
            raise invalid_param(name("currency"), f"Invalid currency: {currency}")
        if data.get("unit_amount") not in (None, ""):
            unit_amount = as_int(data["unit_amount"], name("unit_amount"))
        elif data.get("unit_amount_decimal") not in (None, ""):
            unit_amount = as_int(data["unit_amount_decimal"], name("unit_amount_decimal"))
        else:
            raise missing_param(name("unit_amount"))
        if unit_amount < 0:
            raise invalid_param(name("unit_amount"), "Invalid non-negative integer")
        recurring = None
        if data.get("recurring"):
            recurring = as_dict(data["recurring"], name("recurring"))
            recurring = {
                "aggregate_usage": None,
                "interval": as_str(required(recurring, "interval"), name("recurring[interval]")),
                "interval_count": as_int(
                    recurring.get("interval_count", 1), name("recurring[interval_count]")
                ),
                "meter": None,
                "trial_period_days": None,
                "usage_type": "licensed",
            }
        price = objects.price(
            product_id=product_id,
            currency=currency.lower(),
            unit_amount=unit_amount,
            lookup_key=None,
            nickname=None,
            metadata={},
            active=active,
            recurring=recurring,
        )
        self.prices[price["id"]] = price
        return price

    def _claim_lookup_key(self, lookup_key: str | None, transfer: bool, owner: str = "") -> None:
        if lookup_key is None:
            return
        for price in self.prices.values():
            if price["lookup_key"] == lookup_key and price["id"] != owner:
                if not transfer:
                    raise StripeError(
                        400,
                        f"A price (`{price['id']}`) already uses that lookup key.",
                        param="lookup_key",
                    )
                price["lookup_key"] = None

    def update_price(self, price_id: str, params: Mapping[str, Any]) -> JSON:
        price = self.get(self.prices, "price", price_id, "price")
        reject_unknown(params, PRICE_UPDATE)
        if "lookup_key" in params:
            lookup_key = as_optional_str(params["lookup_key"], "lookup_key")
            transfer = as_bool(params.get("transfer_lookup_key", False), "transfer_lookup_key")
            self._claim_lookup_key(lookup_key, transfer, owner=price_id)
            price["lookup_key"] = lookup_key
        if "active" in params:
            price["active"] = as_bool(params["active"], "active")
        if "nickname" in params:
            price["nickname"] = as_optional_str(params["nickname"], "nickname")
        if "tax_behavior" in params:
            price["tax_behavior"] = as_str(params["tax_behavior"], "tax_behavior")
        if "metadata" in params:
            price["metadata"] = merge_metadata(price["metadata"], params["metadata"])
        return price

    def list_prices(self, params: Mapping[str, Any]) -> JSON:
        reject_unknown(
            params,
            {
                "active",
                "currency",
                "product",
                "type",
                "lookup_keys",
                "created",
                "limit",
                "starting_after",
                "ending_before",
                "expand",
                "recurring",
            },
        )
        matches = objects.created_filter(params.get("created"))
        items = [p for p in self.newest_first(self.prices.values()) if matches(p["created"])]
        if "active" in params:
            active = as_bool(params["active"], "active")
            items = [p for p in items if p["active"] is active]
        for name in ("currency", "product", "type"):
            if name in params:
                wanted = as_str(params[name], name)
                items = [p for p in items if p[name] == wanted]
        if "lookup_keys" in params:
            keys = [as_str(k, "lookup_keys") for k in as_list(params["lookup_keys"], "lookup_keys")]
            if len(keys) > 10:
                raise invalid_param("lookup_keys", "You may pass at most 10 lookup keys.")
            items = [p for p in items if p["lookup_key"] in keys]
        return objects.list_page(items, params, "/v1/prices")

    def search_prices(self, params: Mapping[str, Any]) -> JSON:
        """The subset of Stripe's search syntax: `field:'value'` clauses joined by AND."""
        reject_unknown(params, {"query", "limit", "page", "expand"})
        query = as_str(required(params, "query"), "query")
        items = self.newest_first(self.prices.values())
        for clause in re.split(r"\s+AND\s+", query.strip()):
            match = re.fullmatch(
                r"(active|currency|lookup_key|product|type|metadata\['([^']+)'\])"
                r"\s*:\s*(?:'([^']*)'|\"([^\"]*)\"|(\w+))",
                clause.strip(),
            )
            if match is None:
                raise invalid_param(
                    "query", f"The double cannot parse this search clause: {clause}"
                )
            field_name, meta_key = match.group(1), match.group(2)
            wanted = next(g for g in match.groups()[2:] if g is not None)
            if meta_key is not None:
                items = [p for p in items if p["metadata"].get(meta_key) == wanted]
            elif field_name == "active":
                items = [p for p in items if str(p["active"]).lower() == wanted.lower()]
            else:
                items = [p for p in items if p[field_name] == wanted]
        limit = as_int(params.get("limit", 10), "limit")
        return {
            "object": "search_result",
            "data": items[:limit],
            "has_more": len(items) > limit,
            "next_page": None,
            "url": "/v1/prices/search",
        }

    # ------------------------------------------------------------------ checkout sessions
    def create_session(self, params: Mapping[str, Any]) -> JSON:
        reject_unknown(params, SESSION_CREATE)
        mode = as_str(required(params, "mode"), "mode")
        if mode != "payment":
            raise invalid_param("mode", "The Stripe double supports only `mode=payment`.")
        raw_items = as_list(required(params, "line_items"), "line_items")
        items = [self._line_item(raw, index) for index, raw in enumerate(raw_items)]
        if len({item["currency"] for item in items}) > 1:
            raise invalid_param("line_items", "All line items must use the same currency.")
        for name in ("success_url", "cancel_url"):
            url = as_optional_str(params.get(name), name)
            if url is not None and not re.match(r"^https?://\S+$", url):
                raise invalid_param(name, "Not a valid URL")
        customer_email = as_optional_str(params.get("customer_email"), "customer_email")
        if customer_email is not None and not _SIMPLE_EMAIL.match(customer_email):
            raise invalid_param("customer_email", f"Invalid email address: {customer_email}")
        reference = as_optional_str(params.get("client_reference_id"), "client_reference_id")
        if reference is not None and len(reference) > 200:
            raise invalid_param(
                "client_reference_id", "client_reference_id is limited to 200 characters."
            )
        locale = as_optional_str(params.get("locale"), "locale")
        if locale is not None and locale not in LOCALES:
            raise invalid_param("locale", f"Invalid locale: {locale}")
        promotion_codes = None
        if "allow_promotion_codes" in params:
            promotion_codes = as_bool(params["allow_promotion_codes"], "allow_promotion_codes")
            if promotion_codes and params.get("discounts"):
                raise StripeError(
                    400,
                    "You may only specify one of these parameters: "
                    "allow_promotion_codes, discounts.",
                )
        created = objects.now()
        expires_at = created + 24 * 3600
        if "expires_at" in params:
            expires_at = as_int(params["expires_at"], "expires_at")
            if not created + 1800 <= expires_at <= created + 24 * 3600:
                raise invalid_param(
                    "expires_at", "expires_at must be between 30 minutes and 24 hours from now."
                )
        intent_data = as_dict(params.get("payment_intent_data"), "payment_intent_data")
        reject_unknown(intent_data, PAYMENT_INTENT_DATA, "payment_intent_data")
        session_id = new_id("cs_test_a1", 56)
        session = objects.checkout_session(
            session_id=session_id,
            params=params,
            items=items,
            metadata=as_metadata(params.get("metadata")),
            url=f"{self.public_url()}/pay/{session_id}",
            expires_at=expires_at,
            locale=locale,
            allow_promotion_codes=promotion_codes,
            customer_email=customer_email,
        )
        if params.get("discounts"):
            self._apply_discount(session, items, params["discounts"])
        self.sessions[session_id] = session
        self.extras[session_id] = SessionExtras(
            payment_intent_data=intent_data,
            payment_intent_metadata=as_metadata(
                intent_data.get("metadata"), "payment_intent_data[metadata]"
            ),
            line_items=items,
        )
        return session

    # ------------------------------------------------------------------ coupons
    def create_coupon(self, params: Mapping[str, Any]) -> JSON:
        reject_unknown(params, COUPON_CREATE)
        percent = params.get("percent_off")
        amount = params.get("amount_off")
        if (percent in (None, "")) == (amount in (None, "")):
            raise StripeError(400, "You must specify either percent_off or amount_off.")
        percent_off = None
        amount_off = None
        currency = as_optional_str(params.get("currency"), "currency")
        if percent not in (None, ""):
            try:
                percent_off = float(percent)
            except (TypeError, ValueError):
                raise invalid_param("percent_off", f"Invalid decimal: {percent}") from None
            if not 0 < percent_off <= 100:
                raise invalid_param("percent_off", "percent_off must be between 0 and 100.")
        else:
            amount_off = as_int(amount, "amount_off")
            if amount_off < 1:
                raise invalid_param("amount_off", "Invalid positive integer")
            if currency is None:
                raise missing_param("currency")
        coupon_id = as_optional_str(params.get("id"), "id") or new_id("", 8)
        if coupon_id in self.coupons:
            raise StripeError(
                400, "Coupon already exists.", param="id", code="resource_already_exists"
            )
        coupon = objects.coupon(
            coupon_id,
            percent_off=percent_off,
            amount_off=amount_off,
            currency=currency.lower() if currency else None,
            duration=as_optional_str(params.get("duration"), "duration") or "once",
            name=as_optional_str(params.get("name"), "name"),
            metadata=as_metadata(params.get("metadata")),
        )
        self.coupons[coupon_id] = coupon
        return coupon

    def _apply_discount(self, session: JSON, items: list[JSON], raw: Any) -> None:
        """One coupon on the whole session, spread over the line items by amount."""
        discounts = as_list(raw, "discounts")
        if len(discounts) != 1:
            raise invalid_param("discounts", "You may only specify one discount.")
        entry = as_dict(discounts[0], "discounts[0]")
        reject_unknown(entry, {"coupon", "promotion_code"}, "discounts[0]")
        if entry.get("promotion_code"):
            raise invalid_param(
                "discounts[0][promotion_code]", "The Stripe double supports only coupons here."
            )
        coupon_id = as_str(required(entry, "coupon"), "discounts[0][coupon]")
        coupon = self.get(self.coupons, "coupon", coupon_id, "discounts[0][coupon]")
        subtotal = int(session["amount_subtotal"])
        if coupon["percent_off"] is not None:
            discount = round(subtotal * float(coupon["percent_off"]) / 100)
        else:
            if coupon["currency"] != session["currency"]:
                raise invalid_param(
                    "discounts[0][coupon]", "The coupon's currency is not the session's."
                )
            discount = min(int(coupon["amount_off"]), subtotal)
        left = discount
        for index, item in enumerate(items):
            share = (
                left if index == len(items) - 1 else discount * item["amount_subtotal"] // subtotal
            )
            left -= share
            item["amount_discount"] = share
            item["amount_total"] = item["amount_subtotal"] - share
        session["amount_total"] = subtotal - discount
        session["total_details"]["amount_discount"] = discount
        session["discounts"] = [{"coupon": coupon_id, "promotion_code": None}]
        coupon["times_redeemed"] += 1

    def _line_item(self, raw: Any, index: int) -> JSON:
        prefix = f"line_items[{index}]"
        item = as_dict(raw, prefix)
        reject_unknown(item, LINE_ITEM, prefix)
        if item.get("price"):
            price_id = as_str(item["price"], f"{prefix}[price]")
            price = self.prices.get(price_id)
            if price is None:
                raise StripeError(
                    400,
                    f"No such price: '{price_id}'",
                    param=f"{prefix}[price]",
                    code="resource_missing",
                )
            if not price["active"]:
                raise invalid_param(
                    f"{prefix}[price]",
                    "The price specified is inactive. This field only accepts active prices.",
                )
        elif item.get("price_data"):
            data = as_dict(item["price_data"], f"{prefix}[price_data]")
            price = self._new_price(data, f"{prefix}[price_data]", product_id=None, active=False)
        else:
            raise missing_param(f"{prefix}[price]")
        if price["type"] != "one_time":
            raise invalid_param(
                f"{prefix}[price]",
                "You specified `payment` mode but passed a recurring price. Either switch to "
                "`subscription` mode or use only one-time prices.",
            )
        if item.get("quantity") in (None, ""):
            raise missing_param(f"{prefix}[quantity]")
        quantity = as_int(item["quantity"], f"{prefix}[quantity]")
        if quantity < 1:
            raise invalid_param(f"{prefix}[quantity]", "Quantity must be at least 1.")
        product = self.products[price["product"]]
        return objects.line_item(copy.deepcopy(price), quantity, product["name"])

    def session(self, session_id: str) -> JSON:
        return self.get(self.sessions, "checkout.session", session_id, "session")

    def list_sessions(self, params: Mapping[str, Any]) -> JSON:
        reject_unknown(
            params,
            {
                "created",
                "status",
                "payment_intent",
                "customer",
                "customer_details",
                "payment_link",
                "subscription",
                "limit",
                "starting_after",
                "ending_before",
                "expand",
            },
        )
        matches = objects.created_filter(params.get("created"))
        items = [s for s in self.newest_first(self.sessions.values()) if matches(s["created"])]
        for name in ("status", "payment_intent", "customer", "payment_link", "subscription"):
            if name in params:
                wanted = as_str(params[name], name)
                items = [s for s in items if s[name] == wanted]
        if "customer_details" in params:
            details = as_dict(params["customer_details"], "customer_details")
            email = as_str(required(details, "email"), "customer_details[email]")
            items = [s for s in items if (s["customer_details"] or {}).get("email") == email]
        return objects.list_page(items, params, "/v1/checkout/sessions")

    def line_items_page(self, session_id: str, params: Mapping[str, Any]) -> JSON:
        self.session(session_id)
        reject_unknown(params, {"limit", "starting_after", "ending_before", "expand"})
        items = self.extras[session_id].line_items
        # line items keep their order (oldest first), unlike other lists
        return objects.list_page(
            copy.deepcopy(items), params, f"/v1/checkout/sessions/{session_id}/line_items"
        )

    def expire_session(self, session_id: str, request: JSON) -> JSON:
        session = self.session(session_id)
        if session["status"] != "open":
            raise StripeError(
                400,
                'Only Checkout Sessions with a status in ["open"] can be expired. This Checkout '
                f'Session has a status of "{session["status"]}".',
                param="session",
            )
        session["status"] = "expired"
        session["url"] = None
        intent = self._intent_of(session)
        if intent is not None:
            intent["status"] = "canceled"
        self.emit("checkout.session.expired", session, request=request)
        return session

    # ------------------------------------------------------------------ payments
    def _intent_of(self, session: JSON) -> JSON | None:
        intent_id = session["payment_intent"]
        return self.payment_intents.get(intent_id) if intent_id else None

    def pay(self, session_id: str, outcome: str, email: str | None, name: str | None) -> JSON:
        """What the hosted page does when the buyer submits it with the chosen method."""
        if outcome not in OUTCOMES:
            raise invalid_param("outcome", f"outcome must be one of {', '.join(OUTCOMES)}")
        session = self.session(session_id)
        if session["status"] != "open":
            raise StripeError(
                400,
                f"This Checkout Session is {session['status']} and can no longer be paid.",
                param="session",
                code="checkout_session_not_open",
            )
        email = session["customer_email"] or (email or "").strip() or None
        if email is None:
            raise missing_param("email")
        if not _SIMPLE_EMAIL.match(email):
            raise invalid_param("email", f"Invalid email address: {email}")
        name = (name or "").strip() or None
        details = {
            "address": None,
            "email": email,
            "name": name,
            "phone": None,
            "tax_exempt": "none",
            "tax_ids": [],
        }
        if session["amount_total"] == 0:  # a 100 % discount: nothing to charge
            session.update(
                status="complete",
                url=None,
                customer_details=details,
                payment_status="no_payment_required",
            )
            self.emit("checkout.session.completed", session)
            return session
        intent = self._intent_of(session)
        if intent is None:
            extras = self.extras[session_id]
            intent = objects.payment_intent(
                session, extras.payment_intent_data, dict(extras.payment_intent_metadata)
            )
            self.payment_intents[intent["id"]] = intent
            session["payment_intent"] = intent["id"]
        method = "card" if outcome in ("paid", "declined") else "sepa_debit"
        charge = objects.charge(intent, method=method, email=email, name=name)
        self.charges[charge["id"]] = charge
        intent["latest_charge"] = charge["id"]
        intent["payment_method"] = charge["payment_method"]
        intent["payment_method_types"] = [method]
        if outcome == "declined":
            self._fail_charge(charge, intent, "card_declined", "Your card was declined.")
            return session
        session["status"] = "complete"
        session["url"] = None
        session["customer_details"] = details
        if outcome == "paid":
            self._succeed_charge(charge, intent)
            session["payment_status"] = "paid"
            self.emit("checkout.session.completed", session)
            return session
        intent["status"] = "processing"
        self.emit("charge.pending", charge)
        self.emit("payment_intent.processing", intent)
        self.emit("checkout.session.completed", session)
        generation = self._generation
        succeeds = outcome == "async_success"
        self.scheduler.call_later(
            self.config.async_delay, lambda: self._settle(session_id, succeeds, generation)
        )
        return session

    def _succeed_charge(self, charge: JSON, intent: JSON) -> None:
        charge.update(
            status="succeeded",
            paid=True,
            captured=True,
            amount_captured=charge["amount"],
            balance_transaction=new_id("txn_"),
            outcome={
                "network_status": "approved_by_network",
                "risk_level": "normal",
                "seller_message": "Payment complete.",
                "type": "authorized",
            },
        )
        intent.update(status="succeeded", amount_received=intent["amount"])
        self.emit("charge.succeeded", charge)
        self.emit("payment_intent.succeeded", intent)

    def _fail_charge(self, charge: JSON, intent: JSON, code: str, message: str) -> None:
        charge.update(
            status="failed",
            failure_code=code,
            failure_message=message,
            outcome={
                "network_status": "declined_by_network",
                "type": "issuer_declined",
                "seller_message": "The bank did not return any further details with this decline.",
            },
        )
        intent["status"] = "requires_payment_method"
        intent["last_payment_error"] = {
            "charge": charge["id"],
            "code": code,
            "decline_code": "generic_decline" if code == "card_declined" else None,
            "message": message,
            "type": "card_error" if code == "card_declined" else "invalid_request_error",
        }
        self.emit("charge.failed", charge)
        self.emit("payment_intent.payment_failed", intent)

    def _settle(self, session_id: str, succeeds: bool, generation: int) -> None:
        with self.lock:
            if generation != self._generation or session_id not in self.sessions:
                return
            session = self.sessions[session_id]
            intent = self._intent_of(session)
            if intent is None or intent["status"] != "processing":
                return
            charge = self.charges[intent["latest_charge"]]
            if succeeds:
                self._succeed_charge(charge, intent)
                session["payment_status"] = "paid"
                self.emit("checkout.session.async_payment_succeeded", session)
            else:
                self._fail_charge(
                    charge, intent, "insufficient_funds", "The account has insufficient funds."
                )
                self.emit("checkout.session.async_payment_failed", session)

    def paid_charge_of_session(self, session_id: str) -> JSON:
        session = self.session(session_id)
        intent = self._intent_of(session)
        if intent is None or intent["status"] != "succeeded":
            raise StripeError(
                400,
                f"Checkout Session {session_id} has no successful payment.",
                param="session",
                code="charge_not_refundable",
            )
        return self.charges[intent["latest_charge"]]

    # ------------------------------------------------------------------ refunds
    def create_refund(self, params: Mapping[str, Any], request: JSON) -> JSON:
        reject_unknown(params, REFUND_CREATE)
        if params.get("charge"):
            charge_id = as_str(params["charge"], "charge")
            charge = self.charges.get(charge_id)
            if charge is None:
                raise StripeError(
                    400, f"No such charge: '{charge_id}'", param="charge", code="resource_missing"
                )
        elif params.get("payment_intent"):
            intent_id = as_str(params["payment_intent"], "payment_intent")
            intent = self.payment_intents.get(intent_id)
            if intent is None:
                raise StripeError(
                    400,
                    f"No such payment_intent: '{intent_id}'",
                    param="payment_intent",
                    code="resource_missing",
                )
            if intent["status"] != "succeeded":
                raise StripeError(
                    400,
                    f"This PaymentIntent ({intent_id}) does not have a successful charge to "
                    "refund.",
                    param="payment_intent",
                    code="charge_not_refundable",
                )
            charge = self.charges[intent["latest_charge"]]
        else:
            raise StripeError(
                400,
                "One of the following params should be provided for this "
                "request: payment_intent or charge.",
            )
        amount = None
        if params.get("amount") not in (None, ""):
            amount = as_int(params["amount"], "amount")
            if amount < 1:
                raise invalid_param("amount", "Invalid positive integer")
        reason = as_optional_str(params.get("reason"), "reason")
        if reason is not None and reason not in REFUND_REASONS:
            raise invalid_param(
                "reason", f"Invalid reason: must be one of {', '.join(REFUND_REASONS)}"
            )
        return self.refund_charge(
            charge, amount, reason, as_metadata(params.get("metadata")), request
        )

    def refund_charge(
        self,
        charge: JSON,
        amount: int | None,
        reason: str | None,
        metadata: dict[str, str],
        request: JSON,
    ) -> JSON:
        if charge["status"] != "succeeded":
            raise StripeError(
                400,
                f"Charge {charge['id']} has not succeeded and cannot be refunded.",
                param="charge",
                code="charge_not_refundable",
            )
        if any(
            d["charge"] == charge["id"] and d["status"] != "won" for d in self.disputes.values()
        ):
            raise StripeError(
                400,
                f"Charge {charge['id']} has been charged back; cannot issue a refund.",
                param="charge",
                code="charge_disputed",
            )
        remaining = int(charge["amount"]) - int(charge["amount_refunded"])
        if remaining <= 0:
            raise StripeError(
                400,
                f"Charge {charge['id']} has already been refunded.",
                param="charge",
                code="charge_already_refunded",
            )
        amount = remaining if amount is None else amount
        if amount > remaining:
            currency = charge["currency"]
            raise StripeError(
                400,
                f"Refund amount ({objects.format_amount(amount, currency)}) is greater than "
                f"unrefunded amount on charge ({objects.format_amount(remaining, currency)})",
                param="amount",
                code="amount_too_large",
            )
        refund = objects.refund(charge, amount, reason, metadata)
        self.refunds[refund["id"]] = refund
        previous = {"amount_refunded": charge["amount_refunded"], "refunded": charge["refunded"]}
        charge["amount_refunded"] = int(charge["amount_refunded"]) + amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        self.emit("refund.created", refund, request=request)
        self.emit("charge.refunded", charge, previous=previous, request=request)
        return refund

    def list_refunds(self, params: Mapping[str, Any]) -> JSON:
        reject_unknown(
            params,
            {
                "charge",
                "payment_intent",
                "created",
                "limit",
                "starting_after",
                "ending_before",
                "expand",
            },
        )
        matches = objects.created_filter(params.get("created"))
        items = [r for r in self.newest_first(self.refunds.values()) if matches(r["created"])]
        for name in ("charge", "payment_intent"):
            if name in params:
                wanted = as_str(params[name], name)
                items = [r for r in items if r[name] == wanted]
        return objects.list_page(items, params, "/v1/refunds")

    # ------------------------------------------------------------------ disputes
    def dispute_session(self, session_id: str, reason: str) -> JSON:
        charge = self.paid_charge_of_session(session_id)
        if any(d["charge"] == charge["id"] for d in self.disputes.values()):
            raise StripeError(
                400,
                f"Charge {charge['id']} has already been disputed.",
                param="session",
                code="charge_disputed",
            )
        dispute = objects.dispute(charge, reason)
        self.disputes[dispute["id"]] = dispute
        charge["disputed"] = True
        self.emit("charge.dispute.created", dispute)
        return dispute

    def list_disputes(self, params: Mapping[str, Any]) -> JSON:
        reject_unknown(
            params,
            {
                "charge",
                "payment_intent",
                "created",
                "limit",
                "starting_after",
                "ending_before",
                "expand",
            },
        )
        return self._filtered_list(self.disputes, params, ("charge", "payment_intent"), "disputes")

    def list_charges(self, params: Mapping[str, Any]) -> JSON:
        reject_unknown(
            params,
            {
                "customer",
                "payment_intent",
                "transfer_group",
                "created",
                "limit",
                "starting_after",
                "ending_before",
                "expand",
            },
        )
        return self._filtered_list(
            self.charges, params, ("customer", "payment_intent", "transfer_group"), "charges"
        )

    def _filtered_list(
        self, table: dict[str, JSON], params: Mapping[str, Any], fields: tuple[str, ...], url: str
    ) -> JSON:
        """`table` newest first, filtered by `created` and exact `fields`, one page."""
        matches = objects.created_filter(params.get("created"))
        items = [item for item in self.newest_first(table.values()) if matches(item["created"])]
        for name in fields:
            if name in params:
                wanted = as_str(params[name], name)
                items = [item for item in items if item.get(name) == wanted]
        return objects.list_page(items, params, f"/v1/{url}")

    # ------------------------------------------------------------------ radar
    def warn_of_fraud(self, session_id: str, fraud_type: str) -> JSON:
        """What Radar does when an issuer reports the session's charge as fraud."""
        charge = self.paid_charge_of_session(session_id)
        if fraud_type not in objects.FRAUD_TYPES:
            raise invalid_param(
                "fraud_type", f"fraud_type must be one of {', '.join(objects.FRAUD_TYPES)}"
            )
        warning = objects.early_fraud_warning(charge, fraud_type)
        self.fraud_warnings[warning["id"]] = warning
        self.emit("radar.early_fraud_warning.created", warning)
        return warning

    def list_fraud_warnings(self, params: Mapping[str, Any]) -> JSON:
        reject_unknown(
            params,
            {"charge", "payment_intent", "created", "limit", "starting_after", "ending_before",
             "expand"},
        )  # fmt: skip
        return self._filtered_list(
            self.fraud_warnings, params, ("charge", "payment_intent"), "radar/early_fraud_warnings"
        )

    def close_dispute(self, dispute_id: str, status: str) -> JSON:
        dispute = self.get(self.disputes, "dispute", dispute_id, "dispute")
        if status not in ("won", "lost"):
            raise invalid_param("status", "status must be won or lost")
        if dispute["status"] in ("won", "lost"):
            raise StripeError(
                400,
                f"Dispute {dispute_id} is already closed ({dispute['status']}).",
                param="dispute",
            )
        previous = {"status": dispute["status"]}
        dispute["status"] = status
        self.emit("charge.dispute.closed", dispute, previous=previous)
        return dispute

    # ------------------------------------------------------------------ events
    def emit(
        self,
        event_type: str,
        data_object: JSON,
        *,
        previous: JSON | None = None,
        request: JSON | None = None,
    ) -> JSON:
        urls = list(self.config.webhook_urls)
        event = objects.event(
            event_type,
            copy.deepcopy(data_object),
            api_version=self.config.api_version,
            pending_webhooks=len(urls),
            request=dict(request or NO_REQUEST),
            previous_attributes=previous,
        )
        record = EventRecord(event, json.dumps(event, indent=2))
        self.events[event["id"]] = record
        self._deliver(record, urls)
        return event

    def resend(self, event_id: str, urls: list[str] | None = None) -> EventRecord:
        record = self.events.get(event_id)
        if record is None:
            raise no_such("event", event_id, "id")
        targets = urls or list(self.config.webhook_urls)
        if not targets:
            raise StripeError(400, "No webhook URL is configured.", param="webhook_url")
        self._deliver(record, targets)
        return record

    def list_events(self, params: Mapping[str, Any]) -> JSON:
        reject_unknown(
            params,
            {
                "type",
                "types",
                "created",
                "limit",
                "starting_after",
                "ending_before",
                "expand",
                "delivery_success",
            },
        )
        matches = objects.created_filter(params.get("created"))
        items = [self.event_json(r) for r in reversed(list(self.events.values()))]
        items = [e for e in items if matches(e["created"])]
        if "type" in params:
            pattern = re.escape(as_str(params["type"], "type")).replace(r"\*", ".*")
            items = [e for e in items if re.fullmatch(pattern, e["type"])]
        if "types" in params:
            types = set(as_list(params["types"], "types"))
            items = [e for e in items if e["type"] in types]
        return objects.list_page(items, params, "/v1/events")

    def event_json(self, record: EventRecord) -> JSON:
        event = copy.deepcopy(record.event)
        event["pending_webhooks"] = sum(1 for d in record.deliveries if d.state != "delivered")
        return event

    def _deliver(self, record: EventRecord, urls: list[str]) -> None:
        for url in urls:
            delivery = Delivery(url)
            record.deliveries.append(delivery)
            self._schedule_attempt(record, delivery, 0.0)

    def _schedule_attempt(self, record: EventRecord, delivery: Delivery, delay: float) -> None:
        generation = self._generation
        delivery.next_attempt_at = time.time() + delay
        self.scheduler.call_later(delay, lambda: self._attempt(record, delivery, generation))

    def _attempt(self, record: EventRecord, delivery: Delivery, generation: int) -> None:
        with self.lock:
            if generation != self._generation:
                return
            secret = self.config.webhook_secret
            timeout = self.config.delivery_timeout
        status: int | None = None
        error: str | None = "no webhook secret configured"
        if secret is not None:
            status, error = post_event(delivery.url, record.payload, secret, timeout)
        with self.lock:
            if generation != self._generation:
                return
            delivery.attempts += 1
            delivery.last_status = status
            delivery.last_error = error
            delivery.next_attempt_at = None
            event_id, event_type = record.event["id"], record.event["type"]
            if status is not None and 200 <= status < 300:
                delivery.state = "delivered"
                log.info("delivered %s %s to %s (%s)", event_type, event_id, delivery.url, status)
            elif delivery.attempts >= self.config.max_attempts or secret is None:
                delivery.state = "failed"
                log.warning(
                    "gave up on %s %s to %s after %d attempts (%s)",
                    event_type,
                    event_id,
                    delivery.url,
                    delivery.attempts,
                    status or error,
                )
            else:
                delay = self.config.retry_base * 2 ** (delivery.attempts - 1)
                log.info(
                    "delivery of %s %s to %s failed (%s); retry in %.2fs",
                    event_type,
                    event_id,
                    delivery.url,
                    status or error,
                    delay,
                )
                self._schedule_attempt(record, delivery, delay)
