"""Every function of functions/main.py driven through functions-framework's test client
with generated requests: bodies (JSON-ish, deep, huge numbers, lone surrogates, invalid
UTF-8, forms, bytes), headers (Content-Type, Stripe-Signature, X-Forwarded-For,
X-CloudTasks-*, Origin, Accept), query strings, methods and paths, the real key, token
and ids of one purchase mixed in. The dependencies are real: Google's Firestore
emulator, the storage emulator, the Stripe double through the official library, an
SMTP sink.

Invariants for every answer: a status below 500 (no dependency is down here, so not
even a 503); an error in JSON is `{"error": code, "detail": text}` (the license API's
signed answer carries the same two fields beside `status`, `nonce` and `time`); no
traceback in any body; every license API answer signed.

`make test` runs the `fuzz` profile (40 derandomized examples per function);
`make fuzz` the long one (see conftest.py).
"""

from __future__ import annotations

import json
import re
import urllib.parse
from pathlib import Path
from typing import Any

import functions_framework
import pytest
import stripe
from hypothesis import given
from hypothesis import strategies as st

from commerce.licensing.verifier import KEY_ID_HEADER, SIGNATURE_HEADER
from tests.fuzz.conftest import PROFILE, STOREFRONT, WEBHOOK_SECRET, Seeds

# Hypothesis warns when the process-wide `random` state changes while a strategy draws.
# These strategies never touch `random` (they draw from Hypothesis only); what moved it
# is the system under test, in one of its background threads (which one is not pinned
# down: libraries such as google-api-core jitter their retries with `random`; the unit of
# work no longer does). That warning would fail a run at random (it did, once in a few
# full runs), so it is not an error here.
pytestmark = pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")

MAIN = str(Path(__file__).resolve().parents[2] / "functions" / "main.py")
FUNCTIONS = (
    "checkout",
    "stripe_webhook",
    "download",
    "send_email",
    "email_sweeper",
    "order_status",
    "resend_links",
    "license_api",
    "reconcile",
)
# functions-framework answers these two paths itself (404), before any function runs.
FRAMEWORK_PATHS = ("/robots.txt", "/favicon.ico")
_CODE = re.compile(r"[a-z][a-z0-9_]*")
_TRACEBACK = re.compile(r"Traceback \(most recent call last\)|File \"[^\"]+\", line \d+")

FIELDS = (
    "email", "locale", "ref", "days", "job_id", "key", "nonce", "fingerprint", "label",
    "activation_id", "certificate", "current_version", "platform", "channel", "session_id",
    "id", "type", "data", "object",
)  # fmt: skip
EVENT_TYPES = (
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
    "charge.refunded",
    "charge.dispute.created",
    "charge.dispute.closed",
    "customer.created",
)

# -- generators ----------------------------------------------------------------------------

# What arrives on the wire as header bytes, decoded by werkzeug as latin-1 (no CR/LF).
header_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=80,
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=15,
)


def seeded_strings(seeds: Seeds) -> st.SearchStrategy[str]:
    return st.sampled_from(
        [seeds.key, seeds.token, seeds.session_id, seeds.job_id, seeds.payment_intent,
         "jane@example.com", "en", "de", "linux-x86_64", "1.0.0", "stable",
         "fp-0123456789abcdef", "nonce-0123456789abcdef", "cs_test_a/b", "x" * 1600,
         "\u0000", "evt_1"]
    )  # fmt: skip


def plausible_objects(seeds: Seeds) -> st.SearchStrategy[dict[str, Any]]:
    value = seeded_strings(seeds) | json_values
    return st.dictionaries(st.sampled_from(FIELDS), value, max_size=6)


def stripe_events(seeds: Seeds) -> st.SearchStrategy[dict[str, Any]]:
    ids = (
        seeded_strings(seeds)
        | st.text(max_size=30)
        | st.from_regex(r"(evt|cs_test|pi|ch|dp)_[A-Za-z0-9]{1,30}", fullmatch=True)
    )
    obj = st.fixed_dictionaries(
        {"id": ids},
        optional={
            "payment_intent": ids | st.none(),
            "payment_status": st.sampled_from(["paid", "unpaid", "no_payment_required"]),
            "status": st.sampled_from(["complete", "open", "won", "lost", "warning_closed"]),
            "amount": st.integers(), "amount_total": st.integers() | st.text(max_size=5),
            "amount_refunded": st.integers(), "refunded": st.booleans(),
            "customer_details": st.dictionaries(st.just("email"), seeded_strings(seeds)),
            "metadata": st.dictionaries(st.sampled_from(["product_id", "locale", "ref"]),
                                        st.sampled_from(["genx", "de", "other", ""])),
            "livemode": st.booleans(), "charge": ids,
        },
    )  # fmt: skip
    return st.fixed_dictionaries(
        {"id": ids, "type": st.sampled_from(EVENT_TYPES) | st.text(max_size=20)},
        optional={"data": st.fixed_dictionaries({"object": obj}) | json_values,
                  "object": st.just("event"), "created": st.integers()},
    )  # fmt: skip


def hostile_json() -> st.SearchStrategy[bytes]:
    depth = st.integers(min_value=30, max_value=5000)
    return st.one_of(
        depth.map(lambda n: b"[" * n + b"]" * n),
        depth.map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
        depth.map(lambda n: b"[" * n),
        st.integers(min_value=20, max_value=6000).map(
            lambda n: b'{"days": ' + b"1" * n + b', "job_id": "x"}'
        ),
        st.sampled_from([b"1e999", b"-1e999", b"NaN", b"Infinity"]).map(
            lambda n: b'{"days": ' + n + b"}"
        ),
        st.sampled_from(["nonce", "email", "key", "job_id", "id"]).flatmap(
            lambda k: st.sampled_from(["\\ud800", "\\udfff", "x\\udc00", "\\ud83d\\ude00"]).map(
                lambda v: ('{"' + k + '": "' + v + '", "key": "k"}').encode()
            )
        ),
        st.binary(max_size=60).map(lambda b: b'{"email": "' + b + b'"}'),
        st.binary(max_size=200),
    )


def form_bodies(seeds: Seeds) -> st.SearchStrategy[bytes]:
    raw_values = st.binary(max_size=20).map(lambda b: urllib.parse.quote_from_bytes(b))
    fields = st.lists(
        st.tuples(st.sampled_from(FIELDS) | st.text(max_size=5),
                  seeded_strings(seeds).map(urllib.parse.quote) | raw_values),
        max_size=40,
    )  # fmt: skip
    return fields.map(lambda pairs: "&".join(f"{k}={v}" for k, v in pairs).encode()) | st.binary(
        max_size=100
    )


def bodies(seeds: Seeds) -> st.SearchStrategy[bytes]:
    return st.one_of(
        plausible_objects(seeds).map(lambda o: json.dumps(o).encode()),
        json_values.map(lambda v: json.dumps(v).encode()),
        stripe_events(seeds).map(lambda e: json.dumps(e).encode()),
        hostile_json(),
        form_bodies(seeds),
        st.just(b""),
    )


CONTENT_TYPES = st.sampled_from(
    ["application/json", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
     "text/plain", "application/json; charset=latin-1", "", "garbage/\u00e9", None]
)  # fmt: skip


def paths(seeds: Seeds) -> st.SearchStrategy[str]:
    segment = st.text(max_size=20).map(lambda s: urllib.parse.quote(s, safe=""))
    return st.one_of(
        st.sampled_from(["/", "/validate", "/activate", "/deactivate", "/certificate",
                         "/updates", "/validate/", "/d/", f"/d/{seeds.token}", f"/{seeds.token}",
                         "/d/" + "a" * 300, "/d/..%2f..", "/validate//", "/%ff", "/%00",
                         "/validate%0A", "/d/%0d%0a"]),
        st.lists(segment, min_size=1, max_size=3).map(lambda parts: "/" + "/".join(parts)),
    ).filter(lambda p: p not in FRAMEWORK_PATHS and not p.startswith("//"))  # fmt: skip
    # (The test client reads `//x` as a host name; such paths are tested below.)


def query_strings(seeds: Seeds) -> st.SearchStrategy[bytes]:
    key = st.sampled_from(["session_id", "platform", "locale", "x"])
    value = seeded_strings(seeds).map(urllib.parse.quote) | st.binary(max_size=30).map(
        urllib.parse.quote_from_bytes
    )
    pairs = st.lists(st.tuples(key, value), max_size=3)
    # Raw: what a request line can carry (no space, CR, LF or `#`).
    raw = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E,
                                         exclude_characters="#"), max_size=30)  # fmt: skip
    return pairs.map(lambda ps: "&".join(f"{k}={v}" for k, v in ps).encode()) | raw.map(str.encode)


@st.composite
def requests_for(draw: st.DrawFn, seeds: Seeds) -> dict[str, Any]:
    body = draw(bodies(seeds))
    headers: dict[str, str] = {}
    content_type = draw(CONTENT_TYPES)
    if content_type is not None:
        headers["Content-Type"] = content_type
    signature = draw(st.sampled_from(["valid", "future", "random", "none"]))
    if signature in ("valid", "future"):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None:
            now = draw(
                st.sampled_from([None, 4_000_000_000]) if signature == "future" else st.none()
            )
            headers["Stripe-Signature"] = stripe.WebhookSignature.generate_signature_header(
                text, WEBHOOK_SECRET, now
            )
    elif signature == "random":
        headers["Stripe-Signature"] = draw(header_text)
    for name in (
        "X-Forwarded-For",
        "X-CloudTasks-TaskRetryCount",
        "X-CloudTasks-TaskName",
        "X-CloudTasks-TaskExecutionCount",
        "X-Cloud-Trace-Context",
        "User-Agent",
    ):
        if draw(st.booleans()):
            headers[name] = draw(
                header_text | st.sampled_from(["1" * 5000, "203.0.113.7, 10.0.0.1", "::1"])
            )
    headers["Origin"] = draw(st.sampled_from([STOREFRONT, "http://evil.test", ""]) | header_text)
    headers["Accept"] = draw(
        st.sampled_from(["application/json", "text/html", "*/*"]) | header_text
    )
    return {
        "method": draw(st.sampled_from(["POST", "POST", "POST", "GET", "GET", "OPTIONS", "PUT",
                                        "DELETE", "PATCH", "HEAD"])),
        "path": draw(paths(seeds)),
        "query_string": draw(query_strings(seeds)).decode("latin-1"),  # as WSGI hands it over
        "headers": headers,
        "data": body,
    }  # fmt: skip


# -- invariants ----------------------------------------------------------------------------


def check_answer(function: str, request: dict[str, Any], response: Any) -> None:
    where = f"{function} {request['method']} {request['path']!r} -> {response.status_code}"
    body = response.get_data()
    text = body.decode("utf-8", "replace")
    assert response.status_code < 500, f"{where}: {text[:500]}"
    assert not _TRACEBACK.search(text), f"{where}: traceback in body"
    if function == "license_api":
        assert response.headers.get(SIGNATURE_HEADER), f"{where}: unsigned license answer"
        assert response.headers.get(KEY_ID_HEADER), where
    if response.status_code < 400 or request["method"] == "HEAD":
        return
    if response.mimetype == "application/json":
        answer = json.loads(body)
        assert isinstance(answer, dict), where
        keys = {"error", "detail"}
        if function == "license_api":
            assert {"status", "nonce", "time"} | keys <= set(answer), f"{where}: {answer}"
        else:
            assert set(answer) == keys, f"{where}: {answer}"
        assert _CODE.fullmatch(answer["error"]), f"{where}: {answer}"
        assert isinstance(answer["detail"], str), where
        assert answer["detail"], where
    else:
        # Only a browser's form post to resend_links gets its error as a page.
        assert function == "resend_links", f"{where}: {response.mimetype} {text[:200]}"
        assert response.mimetype == "text/html", where


@pytest.fixture
def clients(installed: Any) -> dict[str, Any]:
    return {name: functions_framework.create_app(name, MAIN).test_client() for name in FUNCTIONS}


def _fuzz(function: str) -> Any:
    @PROFILE
    @given(data=st.data())
    def run(installed: Any, clients: dict[str, Any], data: st.DataObject) -> None:
        _, seeds = installed
        request = data.draw(requests_for(seeds), label="request")
        response = clients[function].open(**request)
        check_answer(function, request, response)

    run.__name__ = f"test_{function}_answers_any_request_below_500_in_the_error_shape"
    return run


test_checkout_answers_any_request_below_500_in_the_error_shape = _fuzz("checkout")
test_stripe_webhook_answers_any_request_below_500_in_the_error_shape = _fuzz("stripe_webhook")
test_download_answers_any_request_below_500_in_the_error_shape = _fuzz("download")
test_send_email_answers_any_request_below_500_in_the_error_shape = _fuzz("send_email")
test_email_sweeper_answers_any_request_below_500_in_the_error_shape = _fuzz("email_sweeper")
test_order_status_answers_any_request_below_500_in_the_error_shape = _fuzz("order_status")
test_resend_links_answers_any_request_below_500_in_the_error_shape = _fuzz("resend_links")
test_license_api_answers_any_request_below_500_in_the_error_shape = _fuzz("license_api")
test_reconcile_answers_any_request_below_500_in_the_error_shape = _fuzz("reconcile")


def test_the_invariants_catch_a_500_a_traceback_and_a_bare_error(installed: Any) -> None:
    """The checks above can fail: fed answers that break each invariant, they do."""
    import flask

    request = {"method": "POST", "path": "/", "headers": {}, "data": b""}
    broken = [
        flask.Response('{"error":"internal_error","detail":"x"}', 500, mimetype="application/json"),
        flask.Response('Traceback (most recent call last):\n  File "x.py", line 1', 400),
        flask.Response('{"message":"bad"}', 400, mimetype="application/json"),
        flask.Response("<h1>Method Not Allowed</h1>", 405, mimetype="text/html"),
    ]
    for response in broken:
        with pytest.raises(AssertionError):
            check_answer("checkout", request, response)
    unsigned = flask.Response('{"status":"VALID"}', 200, mimetype="application/json")
    with pytest.raises(AssertionError):
        check_answer("license_api", request, unsigned)


@pytest.mark.parametrize("path", ["", "//", "///validate", "/validate\n", "/d/x\r\n", "/a//b"])
@pytest.mark.parametrize("function", ["license_api", "download", "checkout"])
def test_paths_the_router_answered_itself_now_reach_the_function(
    installed: Any, clients: dict[str, Any], function: str, path: str
) -> None:
    """Before, werkzeug answered a newline in the path with an HTML 404 (unsigned, for
    the license API) and an empty path with a 308 (a 500 with a CR in the query)."""
    request = {"method": "POST", "path": path, "headers": {"Content-Type": "application/json"},
               "data": b"{}"}  # fmt: skip
    response = clients[function].post(
        "/", data=b"{}", content_type="application/json",
        environ_overrides={"PATH_INFO": path, "QUERY_STRING": "a=\r"},
    )  # fmt: skip
    assert response.status_code not in (308, 500)
    assert response.mimetype == "application/json"
    check_answer(function, request, response)


def test_over_real_http_a_newline_in_the_path_still_gets_a_signed_license_answer(
    installed: Any,
) -> None:
    """The same through a real HTTP server and client (werkzeug's, on loopback), as the
    load balancer forwards it: the percent-encoded newline is decoded into PATH_INFO."""
    import threading

    import requests
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, functions_framework.create_app("license_api", MAIN))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        for path in ("/validate%0A", "/%0d%0a", "/validate//"):
            answer = requests.post(base + path, data=b"{}", timeout=30,
                                   headers={"Content-Type": "application/json"})  # fmt: skip
            assert answer.status_code < 500, path
            assert answer.headers["Content-Type"].startswith("application/json"), path
            assert answer.headers.get(SIGNATURE_HEADER), path
    finally:
        server.shutdown()
        thread.join(timeout=10)
