"""The hosted "pay" page a Checkout Session's `url` opens (plain HTML forms, no script)."""

from __future__ import annotations

from flask import Blueprint, Response, redirect, render_template, request
from werkzeug.wrappers import Response as BaseResponse

from .api import double
from .engine import StripeDouble
from .errors import StripeError
from .objects import JSON, format_amount

hosted = Blueprint("stripe_hosted", __name__)

BUTTONS = (
    ("paid", "Pay"),
    ("declined", "Pay with failing card"),
    ("async_success", "Pay with delayed (async) method"),
    ("async_fail", "Pay with delayed method that fails"),
)


def page(
    state: StripeDouble,
    session: JSON,
    *,
    status: int = 200,
    message: str | None = None,
    email: str = "",
    name: str = "",
) -> Response:
    items = state.extras[session["id"]].line_items
    html = render_template(
        "pay.html",
        session=session,
        items=items,
        total=format_amount(int(session["amount_total"]), session["currency"]),
        format_amount=format_amount,
        buttons=BUTTONS,
        message=message,
        email=session["customer_email"] or email,
        email_locked=bool(session["customer_email"]),
        name=name,
        lang=(session["locale"] or "en") if session["locale"] != "auto" else "en",
    )
    return Response(html, status=status, mimetype="text/html")


def success_redirect(session: JSON) -> BaseResponse:
    target = session["success_url"]
    if not target:
        return Response(render_template("done.html", session=session), mimetype="text/html")
    return redirect(target.replace("{CHECKOUT_SESSION_ID}", session["id"]), code=303)


@hosted.get("/pay/<session_id>")
def show(session_id: str) -> Response:
    state = double()
    with state.lock:
        session = state.sessions.get(session_id)
        if session is None:
            return Response(
                render_template("gone.html", reason="unknown"), 404, mimetype="text/html"
            )
        if session["status"] != "open":
            html = render_template("gone.html", reason=session["status"], session=session)
            return Response(
                html, 410 if session["status"] == "expired" else 200, mimetype="text/html"
            )
        return page(state, session)


@hosted.post("/pay/<session_id>")
def submit(session_id: str) -> BaseResponse:
    state = double()
    outcome = request.form.get("outcome", "")
    email = request.form.get("email", "")
    name = request.form.get("name", "")
    with state.lock:
        session = state.sessions.get(session_id)
        if session is None:
            return Response(
                render_template("gone.html", reason="unknown"), 404, mimetype="text/html"
            )
        if session["status"] != "open":
            html = render_template("gone.html", reason=session["status"], session=session)
            return Response(html, 409, mimetype="text/html")
        if outcome == "cancel":
            if session["cancel_url"]:
                return redirect(session["cancel_url"], code=303)
            return Response(render_template("gone.html", reason="canceled"), mimetype="text/html")
        try:
            state.pay(session_id, outcome, email, name)
        except StripeError as error:
            invalid_email = error.param == "email"
            message = "Enter a valid e-mail address." if invalid_email else error.message
            return page(state, session, status=400, message=message, email=email, name=name)
        if outcome == "declined":
            return page(
                state,
                session,
                status=402,
                email=email,
                name=name,
                message="Your card was declined. Try a different card.",
            )
        return success_redirect(session)
