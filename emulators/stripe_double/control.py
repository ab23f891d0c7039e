"""Operator API and page under `/_double/` (not part of Stripe): trigger what a person,
a bank or a card network would do, and inspect or re-send webhook deliveries."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, redirect, render_template, request
from werkzeug.wrappers import Response as BaseResponse

from .api import double, json_response
from .engine import NO_REQUEST, EventRecord, StripeDouble
from .errors import StripeError
from .objects import JSON, format_amount
from .params import as_int, as_optional_str, as_str

control = Blueprint("stripe_control", __name__, url_prefix="/_double")


def control_params() -> dict[str, Any]:
    if request.is_json:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise StripeError(400, "The body must be a JSON object.")
        return body
    return {key: values if len(values) > 1 else values[0] for key, values in request.form.lists()}


def answer(action: str) -> BaseResponse:
    """Runs `action` under the lock; JSON for programs, a redirect for the operator page."""
    state = double()
    from_page = request.form.get("redirect") is not None
    try:
        params = control_params()
        params.pop("redirect", None)
        with state.lock:
            body = ACTIONS[action](state, params, **(request.view_args or {}))
    except StripeError as error:
        if from_page:
            return redirect("/_double/?" + urlencode({"error": error.message}), code=303)
        return json_response(error.body(), error.status)
    if from_page:
        return redirect("/_double/?" + urlencode({"done": outcome(action, body)}), code=303)
    return json_response(body)


def outcome(action: str, body: JSON) -> str:
    """What an operator-page action did, in words (shown as a notice, not an error)."""
    if action == "refund":
        return f"Refund {body['id']} of {format_amount(body['amount'], body['currency'])} issued."
    if action == "pay":
        return f"Session {body['id']}: {body['status']}, {body['payment_status']}."
    if action == "dispute":
        return f"Dispute {body['id']} opened ({body['reason']})."
    if action == "close_dispute":
        return f"Dispute {body['id']} closed as {body['status']}."
    if action == "fraud_warning":
        return f"Early fraud warning {body['id']} ({body['fraud_type']}) sent."
    if action == "resend":
        return f"Event {body['id']} sent again."
    if action == "reset":
        return "Everything cleared."
    return "Configuration saved."


def session_row(state: StripeDouble, session: JSON) -> JSON:
    """A session's state in words and the actions the double would accept for it now
    (the same rules as `refund_charge` and `dispute_session`)."""
    intent = state.payment_intents.get(session["payment_intent"] or "")
    charge = state.charges.get(intent["latest_charge"] or "") if intent else None
    disputes = [d for d in state.disputes.values() if charge and d["charge"] == charge["id"]]
    paid = intent is not None and intent["status"] == "succeeded" and charge is not None
    refunded = int(charge["amount_refunded"]) if charge else 0
    remaining = int(charge["amount"]) - refunded if charge else 0
    if session["status"] == "open":
        label = "open: awaiting payment"
    elif session["status"] == "expired":
        label = "expired"
    elif not paid:
        label = f"complete: payment {session['payment_status']}"
    elif refunded and remaining <= 0:
        label = "refunded in full"
    elif refunded:
        label = f"paid, {format_amount(refunded, charge['currency'])} refunded"  # type: ignore[index]
    else:
        label = "paid"
    return {
        "session": session,
        "label": label,
        "charge": charge,
        "disputes": disputes,
        "remaining": remaining,
        "can_pay": session["status"] == "open",
        "can_refund": paid and remaining > 0 and all(d["status"] == "won" for d in disputes),
        "can_dispute": paid and remaining > 0 and not disputes,
        "can_warn": paid and remaining > 0,
        "open_disputes": [d for d in disputes if d["status"] not in ("won", "lost")],
    }


def event_summary(state: StripeDouble, record: EventRecord) -> JSON:
    event = state.event_json(record)
    return {
        "id": event["id"],
        "type": event["type"],
        "created": event["created"],
        "object_id": event["data"]["object"].get("id"),
        "deliveries": [delivery.as_json() for delivery in record.deliveries],
        "event": event,
    }


def pay(state: StripeDouble, params: JSON, session_id: str) -> JSON:
    outcome = as_str(params.get("outcome", "paid"), "outcome")
    email = as_optional_str(params.get("email"), "email")
    name = as_optional_str(params.get("name"), "name")
    if email is None and state.session(session_id)["customer_email"] is None:
        email = "buyer@example.com"
    return state.render(state.pay(session_id, outcome, email, name))


def refund(state: StripeDouble, params: JSON, session_id: str) -> JSON:
    charge = state.paid_charge_of_session(session_id)
    amount = as_int(params["amount"], "amount") if params.get("amount") not in (None, "") else None
    reason = as_optional_str(params.get("reason"), "reason") or "requested_by_customer"
    return state.render(state.refund_charge(charge, amount, reason, {}, NO_REQUEST))


def dispute(state: StripeDouble, params: JSON, session_id: str) -> JSON:
    reason = as_optional_str(params.get("reason"), "reason") or "fraudulent"
    return state.render(state.dispute_session(session_id, reason))


def fraud_warning(state: StripeDouble, params: JSON, session_id: str) -> JSON:
    fraud_type = as_optional_str(params.get("fraud_type"), "fraud_type") or "made_with_stolen_card"
    return state.render(state.warn_of_fraud(session_id, fraud_type))


def close_dispute(state: StripeDouble, params: JSON, dispute_id: str) -> JSON:
    status = as_str(params.get("status", ""), "status")
    return state.render(state.close_dispute(dispute_id, status))


def resend(state: StripeDouble, params: JSON, event_id: str) -> JSON:
    url = as_optional_str(params.get("webhook_url"), "webhook_url")
    return event_summary(state, state.resend(event_id, [url] if url else None))


def reset(state: StripeDouble, params: JSON) -> JSON:
    state.reset()
    return {"ok": True}


def configure(state: StripeDouble, params: JSON) -> JSON:
    return state.configure(params)


ACTIONS: dict[str, Any] = {
    "pay": pay,
    "refund": refund,
    "dispute": dispute,
    "close_dispute": close_dispute,
    "fraud_warning": fraud_warning,
    "resend": resend,
    "reset": reset,
    "configure": configure,
}


def _post(rule: str, action: str) -> None:
    def view(**_path: str) -> BaseResponse:
        return answer(action)

    control.add_url_rule(rule, action, view, methods=["POST"])


_post("/sessions/<session_id>/pay", "pay")
_post("/sessions/<session_id>/refund", "refund")
_post("/sessions/<session_id>/dispute", "dispute")
_post("/disputes/<dispute_id>/close", "close_dispute")
_post("/sessions/<session_id>/early_fraud_warning", "fraud_warning")
_post("/events/<event_id>/resend", "resend")
_post("/reset", "reset")
_post("/config", "configure")


@control.get("/config")
def show_config() -> Response:
    state = double()
    with state.lock:
        return json_response(state.describe_config())


@control.get("/health")
def health() -> Response:
    return Response("ok", mimetype="text/plain")


@control.get("/events")
def list_events() -> Response:
    """Every event so far, oldest first, with its delivery attempts; `?type=` filters."""
    state = double()
    wanted = request.args.get("type")
    with state.lock:
        data = [
            event_summary(state, record)
            for record in state.events.values()
            if wanted is None or record.event["type"] == wanted
        ]
    return json_response({"object": "list", "data": data})


@control.get("/")
def operator_page() -> Response:
    state = double()
    with state.lock:
        rows = [session_row(state, s) for s in reversed(list(state.sessions.values()))]
        events = [event_summary(state, record) for record in reversed(list(state.events.values()))]
        html = render_template(
            "operator.html",
            rows=rows,
            events=events[:100],
            config=state.describe_config(),
            done=request.args.get("done"),
            error=request.args.get("error"),
            format_amount=format_amount,
        )
    return Response(html, mimetype="text/html")
