"""The `/v1` HTTP surface: authentication, form decoding, idempotency, Stripe-shaped answers."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from urllib.parse import parse_qsl

from flask import Blueprint, Response, current_app, request

from .engine import StripeDouble
from .errors import StripeError
from .objects import JSON, new_id
from .params import as_metadata, decode_form, expand_paths, reject_unknown

log = logging.getLogger("stripe_double.api")

api = Blueprint("stripe_api", __name__, url_prefix="/v1")

View = Callable[..., JSON]


def double() -> StripeDouble:
    found: StripeDouble = current_app.extensions["stripe_double"]
    return found


def json_response(body: JSON, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = Response(json.dumps(body, indent=2), status=status, mimetype="application/json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def error_response(error: StripeError, request_id: str) -> Response:
    headers = {"Request-Id": request_id}
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="Stripe"'
    return json_response(error.body(), error.status, headers)


def authenticate() -> str:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer ") or not header[7:].strip():
        raise StripeError(
            401,
            "You did not provide an API key. You need to provide your API key in the "
            "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
            "YOUR_SECRET_KEY').",
        )
    key = header[7:].strip()
    if not key.startswith("sk_test_") or len(key) < 12:
        raise StripeError(401, f"Invalid API Key provided: {key[:8]}****{key[-4:]}")
    return key


def request_pairs() -> list[tuple[str, str]]:
    if request.method == "POST":
        body = request.get_data(as_text=True)
        return parse_qsl(body, keep_blank_values=True)
    return parse_qsl(request.query_string.decode("utf-8"), keep_blank_values=True)


def endpoint(view: View) -> Callable[..., Response]:
    """Wraps a view `(double, params, origin, **path) -> object` into a Stripe endpoint."""

    @functools.wraps(view)
    def wrapper(**path: str) -> Response:
        request_id = new_id("req_", 14)
        state = double()
        try:
            api_key = authenticate()
            pairs = request_pairs()
            params = decode_form(pairs)
            idempotency_key = request.headers.get("Idempotency-Key")
            origin = {"id": request_id, "idempotency_key": idempotency_key}
            with state.lock:
                cache_key = (api_key, idempotency_key or "")
                fingerprint = json.dumps([request.method, request.path, sorted(pairs)])
                if request.method == "POST" and idempotency_key:
                    cached = state.idempotency.get(cache_key)
                    if cached is not None:
                        return _replay(cached, fingerprint, idempotency_key, request_id)
                result = view(state, params, origin, **path)
                body = state.render(result, expand_paths(params))
                text = json.dumps(body, indent=2)
                if request.method == "POST" and idempotency_key:
                    state.idempotency[cache_key] = (fingerprint, 200, text)
        except StripeError as error:
            return error_response(error, request_id)
        except Exception:
            log.exception("internal error in %s %s", request.method, request.path)
            failure = StripeError(
                500, "The Stripe double failed; see its log.", error_type="api_error"
            )
            return error_response(failure, request_id)
        headers = {"Request-Id": request_id, "Stripe-Version": state.config.api_version}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return Response(text, status=200, mimetype="application/json", headers=headers)

    return wrapper


def _replay(cached: tuple[str, int, str], fingerprint: str, key: str, request_id: str) -> Response:
    first_fingerprint, status, text = cached
    if first_fingerprint != fingerprint:
        raise StripeError(
            400,
            "Keys for idempotent requests can only be used with the same parameters they were "
            f"first used with. Try using a key other than '{key}' if you meant to execute a "
            "different request.",
            error_type="idempotency_error",
        )
    return Response(
        text,
        status=status,
        mimetype="application/json",
        headers={"Request-Id": request_id, "Idempotent-Replayed": "true", "Idempotency-Key": key},
    )


def retrieve_only(params: JSON) -> None:
    reject_unknown(params, {"expand"})


# ---------------------------------------------------------------------- products
@api.post("/products")
@endpoint
def create_product(state: StripeDouble, params: JSON, origin: JSON) -> JSON:
    return state.create_product(params)


@api.get("/products")
@endpoint
def list_products(state: StripeDouble, params: JSON, origin: JSON) -> JSON:
    return state.list_products(params)


@api.get("/products/<product_id>")
@endpoint
def retrieve_product(state: StripeDouble, params: JSON, origin: JSON, product_id: str) -> JSON:
    retrieve_only(params)
    return state.get(state.products, "product", product_id, "id")


@api.post("/products/<product_id>")
@endpoint
def update_product(state: StripeDouble, params: JSON, origin: JSON, product_id: str) -> JSON:
    return state.update_product(product_id, params)


# ---------------------------------------------------------------------- prices
@api.post("/prices")
@endpoint
def create_price(state: StripeDouble, params: JSON, origin: JSON) -> JSON:
    return state.create_price(params)


@api.get("/prices")
@endpoint
def list_prices(state: StripeDouble, params: JSON, origin: JSON) -> JSON:
    return state.list_prices(params)


@api.get("/prices/search")
@endpoint
def search_prices(state: StripeDouble, params: JSON, origin: JSON) -> JSON:
    return state.search_prices(params)


@api.get("/prices/<price_id>")
@endpoint
def retrieve_price(state: StripeDouble, params: JSON, origin: JSON, price_id: str) -> JSON:
    retrieve_only(params)
    return state.get(state.prices, "price", price_id, "price")


@api.post("/prices/<price_id>")
@endpoint
def update_price(state: StripeDouble, params: JSON, origin: JSON, price_id: str) -> JSON:
    return state.update_price(price_id, params)


# ---------------------------------------------------------------------- coupons
@api.post("/coupons")
@endpoint
def create_coupon(state: StripeDouble, params: JSON, origin: JSON) -> JSON:
    return state.create_coupon(params)


@api.get("/coupons/<coupon_id>")
@endpoint
def retrieve_coupon(state: StripeDouble, params: JSON, origin: JSON, coupon_id: str) -> JSON:
    retrieve_only(params)
    return state.get(state.coupons, "coupon", coupon_id, "id")


# ---------------------------------------------------------------------- checkout
@api.post("/checkout/sessions")
@endpoint
def create_session(state: StripeDouble, params: JSON, origin: JSON) -> JSON:
    return state.create_session(params)


@api.get("/checkout/sessions")
@endpoint
def list_sessions(state: StripeDouble, params: JSON, origin: JSON) -> JSON:
    return state.list_sessions(params)


@api.get("/checkout/sessions/<session_id>")
@endpoint
def retrieve_session(state: StripeDouble, params: JSON, origin: JSON, session_id: str) -> JSON:
    retrieve_only(params)
    return state.session(session_id)


@api.post("/checkout/sessions/<session_id>")
@endpoint
def update_session(state: StripeDouble, params: JSON, origin: JSON, session_id: str) -> JSON:
    session = state.session(session_id)
    reject_unknown(params, {"metadata", "expand"})
    if "metadata" in params:
        session["metadata"] = as_metadata(params["metadata"])
    return session


@api.get("/checkout/sessions/<session_id>/line_items")
@endpoint
def list_line_items(state: StripeDouble, params: JSON, origin: JSON, session_id: str) -> JSON:
    return state.line_items_page(session_id, params)


@api.post("/checkout/sessions/<session_id>/expire")
@endpoint
def expire_session(state: StripeDouble, params: JSON, origin: JSON, session_id: str) -> JSON:
    reject_unknown(params, {"expand"})
    return state.expire_session(session_id, origin)


# ---------------------------------------------------------------------- payments
@api.post("/refunds")
@endpoint
def create_refund(state: StripeDouble, params: JSON, origin: JSON) -> JSON:
    return state.create_refund(params, origin)


@api.get("/refunds")
@endpoint
def list_refunds(state: StripeDouble, params: JSON, origin: JSON) -> JSON:
    return state.list_refunds(params)


@api.get("/refunds/<refund_id>")
@endpoint
def retrieve_refund(state: StripeDouble, params: JSON, origin: JSON, refund_id: str) -> JSON:
    retrieve_only(params)
    return state.get(state.refunds, "refund", refund_id, "refund")


@api.get("/payment_intents/<intent_id>")
@endpoint
def retrieve_payment_intent(
    state: StripeDouble, params: JSON, origin: JSON, intent_id: str
) -> JSON:
    retrieve_only(params)
    return state.get(state.payment_intents, "payment_intent", intent_id, "intent")


@api.get("/charges/<charge_id>")
@endpoint
def retrieve_charge(state: StripeDouble, params: JSON, origin: JSON, charge_id: str) -> JSON:
    retrieve_only(params)
    return state.get(state.charges, "charge", charge_id, "charge")


@api.get("/disputes/<dispute_id>")
@endpoint
def retrieve_dispute(state: StripeDouble, params: JSON, origin: JSON, dispute_id: str) -> JSON:
    retrieve_only(params)
    return state.get(state.disputes, "dispute", dispute_id, "dispute")


@api.get("/disputes")
@endpoint
def list_disputes(state: StripeDouble, params: JSON, origin: JSON) -> JSON:
    return state.list_disputes(params)


@api.get("/charges")
@endpoint
def list_charges(state: StripeDouble, params: JSON, origin: JSON) -> JSON:
    return state.list_charges(params)


@api.get("/radar/early_fraud_warnings")
@endpoint
def list_fraud_warnings(state: StripeDouble, params: JSON, origin: JSON) -> JSON:
    return state.list_fraud_warnings(params)


@api.get("/radar/early_fraud_warnings/<warning_id>")
@endpoint
def retrieve_fraud_warning(
    state: StripeDouble, params: JSON, origin: JSON, warning_id: str
) -> JSON:
    retrieve_only(params)
    return state.get(
        state.fraud_warnings, "radar.early_fraud_warning", warning_id, "early_fraud_warning"
    )


@api.get("/events")
@endpoint
def list_events(state: StripeDouble, params: JSON, origin: JSON) -> JSON:
    return state.list_events(params)


@api.get("/events/<event_id>")
@endpoint
def retrieve_event(state: StripeDouble, params: JSON, origin: JSON, event_id: str) -> JSON:
    retrieve_only(params)
    record = state.events.get(event_id)
    if record is None:
        raise StripeError(404, f"No such event: '{event_id}'", param="id", code="resource_missing")
    return state.event_json(record)


def unrecognized_url() -> Response:
    error = StripeError(
        404,
        f"Unrecognized request URL ({request.method}: {request.path}). Please see "
        "https://stripe.com/docs or we can help at https://support.stripe.com/.",
    )
    return error_response(error, new_id("req_", 14))
