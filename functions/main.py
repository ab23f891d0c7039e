"""Cloud Functions entry points, all deployed from this one file.

Each function is thin: parse the request, call one service from the composition root,
render the result. Top-level imports stay light (no Stripe, Google or mail clients):
the container creates them lazily for the functions that use them.
"""

from __future__ import annotations

from commerce import startup

startup.begin()  # before anything below loads: see commerce.startup

import flask  # noqa: E402
import functions_framework  # noqa: E402

from commerce.bootstrap import get_container  # noqa: E402
from commerce.domain.network import client_address, network_prefix  # noqa: E402
from commerce.http import (  # noqa: E402
    endpoint,
    is_form_post,
    json_response,
    parse_body,
    parse_form,
    read_body,
    route_every_path_to_the_function,
)

CHECKOUT_MAX_BODY = 2 * 1024
WEBHOOK_MAX_BODY = 512 * 1024  # Stripe events are far smaller; room for large sessions

route_every_path_to_the_function()  # no answer from the framework's router (commerce.http)


def _request_budget() -> float:
    return get_container().settings.request_budget_seconds


def _worker_budget() -> float:
    return get_container().settings.worker_budget_seconds


def _reconcile_budget() -> float:
    return get_container().settings.reconcile_budget_seconds


def _storefront_origins() -> tuple[str, ...]:
    return get_container().settings.storefront_origins


def _client_network(request: flask.Request) -> str:
    hops = get_container().settings.trusted_proxy_hops
    address = client_address(request.headers.get("X-Forwarded-For"), request.remote_addr, hops)
    return network_prefix(address)


# -- purchase ------------------------------------------------------------------------------


@functions_framework.http
@endpoint(
    methods=["POST"],
    max_body=CHECKOUT_MAX_BODY,
    cors_origins=_storefront_origins,
    budget=_request_budget,
)
def checkout(request: flask.Request) -> flask.Response:
    """Start a Stripe Checkout Session: JSON -> `{"id", "url"}`, form post -> 303."""
    from commerce.purchase.requests import CheckoutRequest

    body = parse_body(request, CheckoutRequest, CHECKOUT_MAX_BODY)
    result = get_container().checkout_service.start(body, _client_network(request))
    if is_form_post(request):
        return flask.Response(status=303, headers={"Location": result.url})
    return json_response({"id": result.id, "url": result.url})


@functions_framework.http
@endpoint(methods=["POST"], max_body=WEBHOOK_MAX_BODY, budget=_request_budget)
def stripe_webhook(request: flask.Request) -> flask.Response:
    """Stripe events, verified on the raw body; 2xx only once the change is committed."""
    payload = read_body(request, WEBHOOK_MAX_BODY)
    result = get_container().webhook_service.handle(
        payload, request.headers.get("Stripe-Signature")
    )
    return json_response(
        {"received": True, "event_id": result.event_id, "outcome": result.outcome.value}
    )


@functions_framework.http
@endpoint(methods=["POST"], budget=_reconcile_budget)
def reconcile(request: flask.Request) -> flask.Response:
    """Cloud Scheduler: fulfil paid sessions of the last N days that have no order."""
    from commerce.purchase.reconciliation import ReconcileRequest

    body = parse_body(request, ReconcileRequest)
    report = get_container().reconciler.run(body.days)
    return json_response(report.as_dict())


# -- storefront ----------------------------------------------------------------------------


@functions_framework.http
@endpoint(methods=["GET"], max_body=0, cors_origins=_storefront_origins, budget=_request_budget)
def order_status(request: flask.Request) -> flask.Response:
    """Success page polling: `?session_id=cs_...` -> `{"state", "email_masked"}` only."""
    container = get_container()
    container.rate_limiter.check(
        "order_status:network:" + _client_network(request),
        container.settings.order_status_rate_limit_per_network,
    )
    status = container.order_status_service.status(request.args.get("session_id"))
    return json_response(status.as_dict())


@functions_framework.http
@endpoint(methods=["POST"], cors_origins=_storefront_origins, budget=_request_budget)
def resend_links(request: flask.Request) -> flask.Response:
    """Re-send form: the same 202 for every accepted address; HTML for a plain form post."""
    from commerce.errors import CommerceError
    from commerce.storefront.endpoints import resend_error_page, resend_page
    from commerce.storefront.resend import ResendRequest

    container = get_container()
    settings = container.settings
    form_locale = ""
    try:
        if is_form_post(request):  # the locale of an error page, before the body is checked
            form_locale = parse_form(read_body(request)).get("locale", "")
        body = parse_body(request, ResendRequest)
        answer = container.resend_service.request_links(body, network=_client_network(request))
    except CommerceError as error:
        if not is_form_post(request):
            raise
        return resend_error_page(settings, form_locale, error)
    locale = body.locale or form_locale
    if is_form_post(request):
        return resend_page(settings, locale, "resend_neutral", answer.status)
    return json_response(answer.as_dict(locale, settings.product_name), answer.status)


# -- delivery ------------------------------------------------------------------------------


@functions_framework.http
@endpoint(methods=["GET"], budget=_request_budget)
def download(request: flask.Request) -> flask.Response:
    """`GET /d/<token>[?platform=P]`: 302 to a short-lived signed URL for P's file, or
    (no platform) the files on offer: an HTML page for browsers, JSON otherwise."""
    from commerce.delivery.endpoints import (
        PRIVATE_HEADERS,
        listing_html,
        listing_json,
        token_from_path,
    )
    from commerce.http import wants_html

    container = get_container()
    token = token_from_path(request.path)
    network = _client_network(request)
    user_agent = request.headers.get("User-Agent", "")
    platform = request.args.get("platform", "").strip()
    if platform:
        redirect = container.download_service.redeem(
            token, platform, network=network, user_agent=user_agent
        )
        return flask.Response(status=302, headers={"Location": redirect.url, **PRIVATE_HEADERS})
    listing = container.download_service.listing(token, network=network, user_agent=user_agent)
    base_url = str(container.settings.public_base_url)
    if wants_html(request):
        page = listing_html(listing, base_url, token, container.settings.product_name)
        return flask.Response(page, 200, mimetype="text/html", headers=PRIVATE_HEADERS)
    return json_response(listing_json(listing, base_url, token), headers=PRIVATE_HEADERS)


@functions_framework.http
@endpoint(methods=["POST"], budget=_worker_budget)
def send_email(request: flask.Request) -> flask.Response:
    """Cloud Tasks: deliver one e-mail job at most once, or look up and answer a re-send
    request (`{"resend": ...}`); 503 asks for a retry."""
    from commerce.delivery.endpoints import retry_count
    from commerce.delivery.schemas import EmailTaskRequest

    body = parse_body(request, EmailTaskRequest)
    retries = retry_count(request.headers.get("X-CloudTasks-TaskRetryCount"))
    if body.resend is not None:
        resent = get_container().resend_service.handle_task(body.resend, task_retry_count=retries)
        if resent is None:
            return json_response({"job_id": None, "state": "nothing_to_send"})
        return json_response({"job_id": resent.job_id, "state": resent.state})
    assert body.job_id is not None
    result = get_container().email_worker.deliver(body.job_id, task_retry_count=retries)
    return json_response({"job_id": result.job_id, "state": result.state})


@functions_framework.http
@endpoint(methods=["POST"], budget=_worker_budget)
def email_sweeper(request: flask.Request) -> flask.Response:
    """Cloud Scheduler: re-enqueue e-mail jobs left pending or sending too long."""
    requeued = get_container().email_worker.sweep()
    return json_response({"requeued": len(requeued)})


# -- licensing -----------------------------------------------------------------------------


@functions_framework.http
def license_api(request: flask.Request) -> flask.Response:
    """The plugin's license API: POST JSON to /validate, /activate, /deactivate,
    /certificate or /updates; every answer signed (docs/license-api.openapi.yaml)."""
    from commerce.deadlines import request_budget
    from commerce.licensing.endpoints import handle

    container = get_container()
    with request_budget(container.settings.request_budget_seconds):
        return handle(request, container)
