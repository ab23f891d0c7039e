"""What Cloud Scheduler and Cloud Tasks send, read from the HCL (offline).

The calls to our own functions are sent through their test clients on the emulators in
tests/integration/test_scheduled_and_queued_calls.py; here the reader itself is checked, and the
job that calls a Google API (the Firestore export) is checked against that API's own
published description (the google-cloud-firestore admin client: its REST route, its
request message with unknown fields refused, its OAuth scopes).
"""

from __future__ import annotations

import json
from pathlib import Path

import hcl2
import pytest
from google.api_core import path_template
from google.cloud.firestore_admin_v1 import ExportDocumentsRequest, FirestoreAdminClient
from google.cloud.firestore_admin_v1.services.firestore_admin.transports.base import (
    FirestoreAdminTransport,
)
from google.cloud.firestore_admin_v1.services.firestore_admin.transports.rest_base import (
    _BaseFirestoreAdminRestTransport,
)
from hcl2.utils import SerializationOptions
from infra_helpers import REPO_ROOT, TERRAFORM_ROOT, load_infra_module, replace_once

from infra import platform_calls
from infra.platform_calls import UnsupportedExpression

bundle = load_infra_module("bundle")
SHOP = TERRAFORM_ROOT / "modules" / "shop"

# Scheduler jobs whose target is not a function of ours, with the reason and the check.
EXTERNAL = {
    "google_cloud_scheduler_job.firestore_export": (
        "Firestore Admin API exportDocuments (managed backup); checked below against the "
        "API's REST route and ExportDocumentsRequest"
    ),
}


def test_every_scheduled_job_targets_a_deployed_function_or_a_listed_external_api() -> None:
    calls = platform_calls.scheduled_calls()
    assert calls, "no Cloud Scheduler job found: the reader is broken"
    for call in calls:
        if call.target is None:
            assert call.source in EXTERNAL, f"{call.source} calls {call.url}: list it with a reason"
        else:
            assert call.target in bundle.ENTRY_POINTS
            assert call.auth == "oidc", f"{call.source} must carry an OIDC token for Cloud Run"
    assert {call.source for call in calls if call.target is None} == set(EXTERNAL)


def test_the_scheduled_body_is_what_terraform_encodes() -> None:
    by_target = {call.target: call for call in platform_calls.scheduled_calls()}
    reconcile = by_target["reconcile"]
    assert reconcile.method == "POST"
    assert reconcile.body == b'{"trigger":"scheduler"}'
    assert reconcile.headers["Content-Type"] == "application/json"
    assert reconcile.headers["User-Agent"] == "Google-Cloud-Scheduler"


def test_jsonencode_sorts_keys_and_escapes_like_terraform() -> None:
    assert platform_calls.jsonencode({"b": 1, "a": [True, None, "x<y & z>"]}) == (
        '{"a":[true,null,"x\\u003cy \\u0026 z\\u003e"],"b":1}'
    )


def test_base64encode_jsonencode_is_evaluated_and_references_are_substituted() -> None:
    expression = (
        "${base64encode(jsonencode({"
        'outputUriPrefix = "gs://${google_storage_bucket.backups.name}", n = 2'
        "}))}"
    )
    assert (
        platform_calls.evaluate_body(expression)
        == b'{"n":2,"outputUriPrefix":"gs://genx-prod-backups"}'
    )


@pytest.mark.parametrize(
    "expression",
    [
        '${jsonencode({trigger = "scheduler"})}',  # not base64: the API would refuse it
        '${base64encode(jsonencode({bucket = "${google_storage_bucket.unknown.name}"}))}',
        "${local.some_body}",
    ],
)
def test_an_expression_the_reader_does_not_know_fails_loudly(expression: str) -> None:
    with pytest.raises(UnsupportedExpression):
        platform_calls.evaluate_body(expression)


def test_a_job_without_a_content_type_is_sent_as_octet_stream(terraform_copy: Path) -> None:
    scheduler = terraform_copy / "modules" / "shop" / "scheduler.tf"
    replace_once(
        scheduler,
        "    uri         = local.deployed[each.key].uri\n"
        '    headers     = { "Content-Type" = "application/json" }\n',
        "    uri         = local.deployed[each.key].uri\n",
    )
    calls = platform_calls.scheduled_calls(terraform_copy / "modules" / "shop")
    reconcile = next(call for call in calls if call.target == "reconcile")
    assert reconcile.headers["Content-Type"] == "application/octet-stream"


def test_the_email_queue_forces_post_https_and_the_workers_host() -> None:
    (queue,) = platform_calls.queue_targets()
    task = {
        "name": "projects/p/locations/l/queues/email/tasks/email-x",
        "http_request": {
            "http_method": "GET",
            "url": "http://elsewhere.example/send?x=1",
            "headers": {"Content-Type": "application/json"},
            "body": b'{"job_id":"x"}',
        },
    }
    call = platform_calls.queued_call(queue, task)
    assert call.target == "send_email"
    assert call.method == "POST"
    assert call.url == platform_calls.function_url("send_email") + "/send?x=1"
    assert call.headers["X-CloudTasks-TaskName"] == "email-x"
    assert call.auth == "oidc"


# -- the external job: Firestore's managed export ---------------------------------------


def test_the_firestore_export_job_is_a_valid_export_documents_call() -> None:
    (call,) = [c for c in platform_calls.scheduled_calls() if c.source in EXTERNAL]
    (route,) = _BaseFirestoreAdminRestTransport._BaseExportDocuments._get_http_options()
    scheme, _, host, path = call.url.split("/", 3)

    assert scheme == "https:"
    assert host == FirestoreAdminClient.DEFAULT_ENDPOINT
    assert call.method == route["method"].upper()
    assert path_template.validate(route["uri"], "/" + path), (route["uri"], path)
    assert route["body"] == "*"  # the whole request message is the JSON body
    assert call.headers["Content-Type"] == "application/json"
    # Unknown or misspelt fields are refused by the API's own message type.
    request = ExportDocumentsRequest.from_json(call.body.decode(), ignore_unknown_fields=False)
    assert request.output_uri_prefix.startswith("gs://")
    assert "/" not in request.output_uri_prefix.removeprefix("gs://").rstrip("/")
    assert call.auth == "oauth"  # Google APIs take OAuth access tokens, not OIDC
    assert call.auth_detail["scope"] in FirestoreAdminTransport.AUTH_SCOPES


def test_a_misspelt_export_field_is_caught(terraform_copy: Path) -> None:
    replace_once(
        terraform_copy / "modules" / "shop" / "scheduler.tf",
        "jsonencode({ outputUriPrefix =",
        "jsonencode({ outputUriPrefx =",
    )
    calls = platform_calls.scheduled_calls(terraform_copy / "modules" / "shop")
    (call,) = [c for c in calls if c.source in EXTERNAL]
    with pytest.raises(Exception, match="outputUriPrefx"):
        ExportDocumentsRequest.from_json(call.body.decode(), ignore_unknown_fields=False)
    assert json.loads(call.body) == {"outputUriPrefx": "gs://genx-prod-backups"}


def test_docs_state_the_reconcile_schedule_terraform_deploys() -> None:
    variables = hcl2.loads(
        (SHOP / "variables.tf").read_text(encoding="utf-8"),
        serialization_options=SerializationOptions(strip_string_quotes=True),
    )
    (default,) = [
        block["reconcile_schedule"]["default"]
        for block in variables["variable"]
        if "reconcile_schedule" in block
    ]
    stripe_doc = (REPO_ROOT / "docs" / "stripe.md").read_text(encoding="utf-8")
    assert f"`{default}`" in stripe_doc
    assert "every hour" not in stripe_doc
