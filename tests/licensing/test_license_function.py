"""The `license_api` function driven through functions-framework in-process, on the
Firestore emulator: routing, signed answers, nonce echo, error shapes, fuzzed bodies."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commerce.bootstrap import Container, use_container
from commerce.clock import FixedClock
from commerce.licensing.verifier import (
    KEY_ID_HEADER,
    SIGNATURE_HEADER,
    CertificateState,
    LicenseCall,
    ResponseCheck,
    check_response,
    check_signature,
    verify_certificate,
)
from commerce.secrets import EnvSecrets
from tests.licensing.conftest import MAIN, Bought, machine, nonce
from tests.support import factories

pytestmark = pytest.mark.emulators
N = "nonce-0123456789abcdef"
JSON = "application/json"


def body(**fields: str) -> bytes:
    """A raw JSON body with a good nonce and the given raw JSON member texts."""
    members = [
        f'"nonce":"{N}"',
        *(f'"{k}":{v}' if k[0] != '"' else f"{k}:{v}" for k, v in fields.items()),
    ]
    return ("{" + ",".join(members) + "}").encode()


def post(client: Any, path: str, body: Any, **headers: str) -> Any:
    return client.post(
        path,
        data=json.dumps(body),
        headers={"Content-Type": "application/json", **headers},
    )


def verified(response: Any, keys: dict, call: LicenseCall | None = None) -> dict:
    """The body of an answer whose signature checks out with the public key alone and,
    given the call, that answers exactly that call (as the plugin checks)."""
    signature = (
        response.get_data(),
        response.headers.get(SIGNATURE_HEADER),
        response.headers.get(KEY_ID_HEADER),
        keys,
    )
    if call is None:
        assert check_signature(*signature) is ResponseCheck.OK
    else:
        assert check_response(*signature, request=call) is ResponseCheck.OK
    body: dict = json.loads(response.get_data())
    return body


def test_validate_answers_a_signed_body_that_echoes_the_nonce(
    license_client: Any, bought: Bought, public_keys: dict, clock: FixedClock
) -> None:
    response = post(license_client, "/validate", {"key": bought.key, "nonce": N})

    assert response.status_code == 200
    body = verified(response, public_keys, LicenseCall("validate", N, key=bought.key))
    assert body["status"] == "VALID"
    assert body["time"] == int(clock.now().timestamp())
    assert response.headers["Cache-Control"] == "no-store"


def test_a_changed_byte_in_the_answer_fails_verification(
    license_client: Any, bought: Bought, public_keys: dict
) -> None:
    response = post(license_client, "/validate", {"key": bought.key, "nonce": N})
    body = response.get_data()
    tampered = body.replace(b'"VALID"', b'"VALIE"')

    outcome = check_response(
        tampered,
        response.headers[SIGNATURE_HEADER],
        response.headers[KEY_ID_HEADER],
        public_keys,
        request=LicenseCall("validate", N, key=bought.key),
    )

    assert outcome is ResponseCheck.BAD_SIGNATURE


def test_activate_over_http_returns_a_certificate_that_verifies_offline(
    license_client: Any, bought: Bought, public_keys: dict, clock: FixedClock
) -> None:
    response = post(
        license_client,
        "/activate",
        {"key": bought.key, "fingerprint": machine(1), "label": "Studio", "nonce": N},
    )

    body = verified(
        response, public_keys, LicenseCall("activate", N, key=bought.key, fingerprint=machine(1))
    )
    assert body["status"] == "VALID"
    check = verify_certificate(
        body["certificate"], public_keys, now=int(clock.now().timestamp()), fingerprint=machine(1)
    )
    assert check.state is CertificateState.VALID


def test_paths_under_a_prefix_route_too(
    license_client: Any, bought: Bought, public_keys: dict
) -> None:
    response = post(license_client, "/license_api/validate/", {"key": bought.key, "nonce": N})

    assert verified(response, public_keys, LicenseCall("validate", N, key=bought.key))[
        "status"
    ] == ("VALID")


def test_a_wrong_key_learns_only_not_found(license_client: Any, public_keys: dict) -> None:
    stranger = factories.key_service().issue_key("lic_nobody").key

    response = post(
        license_client, "/validate", {"key": stranger, "fingerprint": machine(1), "nonce": N}
    )

    body = verified(
        response, public_keys, LicenseCall("validate", N, key=stranger, fingerprint=machine(1))
    )
    assert response.status_code == 200
    assert set(body) == {"status", "nonce", "time", "request", "detail"}
    assert body["status"] == "NOT_FOUND"


def test_a_typo_answers_invalid_key(license_client: Any, bought: Bought, public_keys: dict) -> None:
    typo = bought.key[:-1] + ("0" if bought.key[-1] != "0" else "1")

    response = post(license_client, "/validate", {"key": typo, "nonce": N})

    assert verified(response, public_keys, LicenseCall("validate", N, key=typo))["status"] == (
        "INVALID_KEY"
    )


@pytest.mark.parametrize(
    ("method", "path", "data", "content_type", "status", "error"),
    [
        ("GET", "/validate", None, None, 405, "method_not_allowed"),
        ("POST", "/nope", b"{}", "application/json", 404, "not_found"),
        ("POST", "/validate", b"key=1", "text/plain", 415, "unsupported_media_type"),
        ("POST", "/validate", b"{not json", JSON, 400, "invalid_json"),
        ("POST", "/validate", b"[1,2]", JSON, 400, "invalid_json"),
        ("POST", "/validate", b"[" * 4000 + b"]" * 4000, JSON, 400, "invalid_json"),
        ("POST", "/validate", b'{"key":' + b"9" * 5000 + b"}", JSON, 400, "invalid_json"),
        ("POST", "/validate", b'{"key":"x"}', JSON, 400, "nonce_required"),
        ("POST", "/validate", b'{"key":"x","nonce":null}', JSON, 400, "nonce_required"),
        ("POST", "/validate", b'{"key":"x","nonce":"short"}', JSON, 400, "invalid_nonce"),
        ("POST", "/validate", b'{"key":"x","nonce":12345678901234567}', JSON, 400, "invalid_nonce"),
        ("POST", "/validate", b'{"nonce":"\\ud800' + b"a" * 20 + b'"}', JSON, 400, "invalid_text"),
        ("POST", "/validate", body(key='"\\udfff"'), JSON, 400, "invalid_text"),
        ("POST", "/validate", body(**{'"\\ud800"': "1"}), JSON, 400, "invalid_text"),
        ("POST", "/validate", body(key="5"), JSON, 400, "invalid_request"),
        ("POST", "/validate", body(key='"x"', extra="1"), JSON, 400, "invalid_request"),
        ("POST", "/deactivate", body(key='"x"'), JSON, 400, "invalid_request"),
        ("POST", "/updates", body(current_version='"1.0.0"', platform='"linux"'), None, 400, None),
        ("POST", "/validate", b"{" + b" " * 9000 + b"}", JSON, 413, None),
    ],
)
def test_malformed_requests_get_a_signed_4xx_with_a_stable_code(
    license_client: Any,
    public_keys: dict,
    method: str,
    path: str,
    data: bytes | None,
    content_type: str | None,
    status: int,
    error: str | None,
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}

    response = license_client.open(path, method=method, data=data, headers=headers)

    assert response.status_code == status
    body = verified(response, public_keys)
    assert body["status"] == "INVALID_REQUEST"
    if error:
        assert body["error"] == error


def test_the_nonce_is_echoed_on_errors_too(license_client: Any, public_keys: dict) -> None:
    response = post(license_client, "/validate", {"nonce": N})

    assert response.status_code == 400
    assert verified(response, public_keys, LicenseCall("validate", N))["nonce"] == N


@pytest.mark.parametrize(
    "data",
    [
        b'{"key":"x","nonce":"<script>alert(1)</script>"}',
        b'{"key":"x","nonce":"' + b"a" * 129 + b'"}',
        b'{"key":"x","nonce":"\\ud800aaaaaaaaaaaaaaaaaaaa"}',
        b'{"key":"x","nonce":"caf\xc3\xa9-caf\xc3\xa9-caf\xc3\xa9-caf\xc3\xa9"}',
        b'{"key":"x","nonce":["aaaaaaaaaaaaaaaaaaaa"]}',
    ],
)
def test_a_bad_nonce_gets_a_signed_400_that_does_not_echo_it(
    license_client: Any, public_keys: dict, data: bytes
) -> None:
    response = license_client.post("/validate", data=data, headers={"Content-Type": JSON})

    assert response.status_code == 400
    answer = verified(response, public_keys)
    assert answer["nonce"] is None
    assert answer["error"] in {"invalid_nonce", "invalid_text"}
    assert answer["request"]["key_sha256"] is None  # salted by the nonce: none to salt with


def test_every_operation_binds_its_answer_to_the_request(
    license_client: Any, bought: Bought, public_keys: dict
) -> None:
    calls = [
        LicenseCall("activate", nonce(), key=bought.key, fingerprint=machine(1)),
        LicenseCall("validate", nonce(), key=bought.key, fingerprint=machine(1)),
        LicenseCall("validate", nonce(), key=bought.key.lower()),
        LicenseCall("certificate", nonce(), key=bought.key, fingerprint=machine(1)),
        LicenseCall("deactivate", nonce(), key=bought.key, fingerprint=machine(1)),
        LicenseCall("validate", nonce(), key=bought.key, fingerprint=machine(1)),
    ]
    statuses = []
    for call in calls:
        fields = {
            name: getattr(call, name) for name in ("key", "fingerprint") if getattr(call, name)
        }
        response = post(license_client, f"/{call.operation}", {"nonce": call.nonce, **fields})
        answer = verified(response, public_keys, call)
        statuses.append(answer["status"])
        assert answer["request"]["operation"] == call.operation
        assert bought.key not in response.get_data(as_text=True)
        assert machine(1) not in response.get_data(as_text=True)

    assert statuses == ["VALID", "VALID", "VALID", "VALID", "VALID", "NO_ACTIVATION"]


def test_updates_by_certificate_binds_the_certificate(
    license_client: Any, bought: Bought, public_keys: dict
) -> None:
    activated = post(
        license_client,
        "/activate",
        {"key": bought.key, "fingerprint": machine(1), "nonce": nonce()},
    ).get_json()
    call = LicenseCall("updates", nonce(), certificate=activated["certificate"])

    response = post(
        license_client,
        "/updates",
        {
            "certificate": call.certificate,
            "current_version": "1.0.0",
            "platform": "linux-x86_64",
            "nonce": call.nonce,
        },
    )

    assert verified(response, public_keys, call)["status"] == "VALID"


def test_a_relayed_valid_for_another_machine_is_refused_by_the_plugin(
    license_client: Any, bought: Bought, public_keys: dict
) -> None:
    """Machine A is activated, machine B is not. B asks with its nonce; a relay forwards
    the question with A's fingerprint instead, gets a signed VALID for A carrying B's
    nonce, and hands it to B. The signature and nonce are good; the binding is not."""
    activated = post(
        license_client, "/activate", {"key": bought.key, "fingerprint": machine(1), "nonce": N}
    )
    assert activated.get_json()["status"] == "VALID"
    b_nonce = nonce()
    b_asks = LicenseCall("validate", b_nonce, key=bought.key, fingerprint=machine(2))

    relayed = post(
        license_client,
        "/validate",
        {"key": bought.key, "fingerprint": machine(1), "nonce": b_nonce},
    )
    direct = post(
        license_client,
        "/validate",
        {"key": bought.key, "fingerprint": machine(2), "nonce": b_nonce},
    )

    signed = (relayed.get_data(), relayed.headers[SIGNATURE_HEADER], relayed.headers[KEY_ID_HEADER])
    assert relayed.get_json()["status"] == "VALID"
    assert relayed.get_json()["nonce"] == b_nonce
    assert check_signature(*signed, public_keys) is ResponseCheck.OK
    assert check_response(*signed, public_keys, request=b_asks) is ResponseCheck.REQUEST_MISMATCH
    assert verified(direct, public_keys, b_asks)["status"] == "NO_ACTIVATION"


def test_rate_limited_answers_are_429_with_retry_after_and_signed(
    settings_limited: Container, bought: Bought, public_keys: dict
) -> None:
    from functions_framework import create_app

    client = create_app("license_api", MAIN).test_client()
    post(client, "/validate", {"key": bought.key, "nonce": nonce()})

    response = post(client, "/validate", {"key": bought.key, "nonce": N})

    assert response.status_code == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    body = verified(response, public_keys, LicenseCall("validate", N, key=bought.key))
    assert body["status"] == "RATE_LIMITED"
    assert body["retry_after"] == int(response.headers["Retry-After"])


@pytest.fixture
def settings_limited(firestore_db: Any, clock: FixedClock) -> Any:
    from tests.licensing.conftest import build_container, make_settings

    limited = build_container(make_settings(license_rate_limit_per_key=1), clock, firestore_db)
    use_container(limited)
    yield limited
    use_container(None)


def test_without_a_signing_key_the_api_fails_closed(
    container: Container, firestore_db: Any, clock: FixedClock, bought: Bought
) -> None:
    from functions_framework import create_app

    secrets = {k: v for k, v in factories.TEST_SECRETS.items() if k != "SIGNING_PRIVATE_KEY"}
    unsigned = Container(container.settings, clock=clock, secrets=EnvSecrets(secrets))
    unsigned.__dict__["db"] = firestore_db
    use_container(unsigned)
    try:
        client = create_app("license_api", MAIN).test_client()
        response = post(client, "/validate", {"key": bought.key, "nonce": N})
    finally:
        use_container(None)

    assert response.status_code == 503
    assert SIGNATURE_HEADER not in response.headers
    assert response.get_json()["status"] == "UNAVAILABLE"
    assert response.get_json()["error"] == "secret_unavailable"


# -- fuzzing ---------------------------------------------------------------------------------

FIELDS = [
    "key",
    "fingerprint",
    "nonce",
    "label",
    "activation_id",
    "certificate",
    "current_version",
    "platform",
    "channel",
]
PATHS = ["/validate", "/activate", "/deactivate", "/certificate", "/updates", "/", "/x"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=300),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(
    path=st.sampled_from(PATHS),
    body=st.binary(max_size=2000),
    ctype=st.sampled_from(
        ["application/json", "text/plain", "", "application/x-www-form-urlencoded"]
    ),
)
def test_fuzzed_raw_bodies_never_produce_a_5xx(
    license_client: Any, public_keys: dict, path: str, body: bytes, ctype: str
) -> None:
    response = license_client.post(path, data=body, headers={"Content-Type": ctype})

    assert response.status_code < 500, response.get_data()
    verified(response, public_keys)


@FUZZ
@given(data=st.data())
def test_fuzzed_json_requests_never_produce_a_5xx(
    license_client: Any, bought: Bought, public_keys: dict, data: st.DataObject
) -> None:
    key = bought.key
    key_like = st.sampled_from(
        [key, key.lower(), key.replace("-", " "), key[:-1] + "0", "GENX-0000-0000-0000"]
    )
    field_values = {
        name: st.one_of(json_values, key_like, st.sampled_from([machine(1), "1.0.0", "stable"]))
        for name in FIELDS
    }
    body = data.draw(
        st.fixed_dictionaries({}, optional=field_values)
        | st.dictionaries(st.text(max_size=12), json_values, max_size=5)
    )
    path = data.draw(st.sampled_from(PATHS))

    response = post(license_client, path, body)

    assert response.status_code < 500, response.get_data()
    verified(response, public_keys)


@FUZZ
@given(data=st.data())
def test_valid_requests_with_one_fuzzed_field_never_produce_a_5xx(
    license_client: Any, bought: Bought, public_keys: dict, data: st.DataObject
) -> None:
    valid = {
        "/validate": {"key": bought.key, "fingerprint": machine(1), "nonce": N},
        "/activate": {"key": bought.key, "fingerprint": machine(1), "label": "PC", "nonce": N},
        "/deactivate": {"key": bought.key, "fingerprint": machine(1), "nonce": N},
        "/certificate": {"key": bought.key, "fingerprint": machine(1), "nonce": N},
        "/updates": {
            "key": bought.key,
            "current_version": "1.0.0",
            "platform": "linux-x86_64",
            "nonce": N,
        },
    }
    path = data.draw(st.sampled_from(sorted(valid)))
    body = dict(valid[path])
    field = data.draw(st.sampled_from(FIELDS))
    body[field] = data.draw(json_values | st.text(st.characters(codec="utf-8"), max_size=300))

    response = post(license_client, path, body)

    assert response.status_code < 500, response.get_data()
    assert verified(response, public_keys)["status"] in {
        "VALID",
        "INVALID_REQUEST",
        "INVALID_KEY",
        "NOT_FOUND",
        "NO_ACTIVATION",
        "FINGERPRINT_MISMATCH",
        "CHANNEL_NOT_ALLOWED",
    }


# Any code point, lone surrogates included (json.dumps writes them as \\udXXX escapes,
# which is how a hostile client sends them).
any_text = st.text(st.characters(exclude_categories=()), max_size=40)


@FUZZ
@given(
    path=st.sampled_from(PATHS),
    body=st.dictionaries(
        st.sampled_from(FIELDS) | any_text,
        any_text | st.sampled_from([N, machine(1), "1.0.0"]),
        max_size=5,
    ),
    method=st.sampled_from(["POST", "POST", "GET", "PUT", "DELETE"]),
)
def test_fuzzed_text_with_lone_surrogates_anywhere_gets_a_signed_answer_below_500(
    license_client: Any, public_keys: dict, path: str, body: dict, method: str
) -> None:
    response = license_client.open(
        path, method=method, data=json.dumps(body), headers={"Content-Type": JSON}
    )

    assert response.status_code < 500, response.get_data()
    answer = verified(response, public_keys)
    nonce = answer["nonce"]
    assert nonce is None or (nonce == body.get("nonce") and len(nonce) >= 16)


def test_a_current_version_that_is_not_semver_is_an_invalid_request(
    license_client: Any, bought: Bought, public_keys: dict
) -> None:
    response = post(
        license_client,
        "/updates",
        {"key": bought.key, "current_version": "01.2.3", "platform": "linux-x86_64", "nonce": N},
    )

    assert response.status_code == 400
    body = verified(response, public_keys)
    assert body["error"] == "invalid_request"
    assert "semantic version" in body["detail"]
