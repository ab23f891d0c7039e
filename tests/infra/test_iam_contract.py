"""The IAM each function gets in Terraform is exactly what its code uses.

Every deployed function is driven through its real paths (functions-framework test
clients; the Stripe double delivering webhooks to a served `stripe_webhook`; the
Cloud Tasks emulator dispatching the tasks, built exactly as in the cloud with their
OIDC identity, to a served `send_email`; SendGrid as a local fake; Google's Firestore
emulator and the storage emulator behind), with every Google Cloud operation recorded
at the client-library level (tests/support/gcp_recorder.py). Each function runs in its
own container, as it runs in its own instance. The record is then checked against the
grants read from infra/terraform through infra/iam_permissions.toml
(infra/iam_contract.py): a missing permission fails, and so does a grant nothing uses.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from functions_framework import create_app
from infra_helpers import REPO_ROOT, TERRAFORM_ROOT, load_infra_module, replace_once
from werkzeug.serving import make_server

from commerce.adapters.artifacts import ArtifactStore
from commerce.adapters.tasks_queue import CloudTasksEmailQueue
from commerce.bootstrap import Container, use_container
from commerce.domain.models import EmailJobState
from commerce.domain.orders import OrderState
from commerce.secrets import EnvSecrets
from commerce.settings import Settings
from emulators.local_secrets import new_service_account_key
from emulators.stack import function_names
from emulators.stripe_setup import client_for, ensure_catalog
from tests.delivery.conftest import artifact_files
from tests.support import emulators as emu
from tests.support import factories, gcp_recorder
from tests.support.gcp_recorder import Recorder, current_function, recording
from tests.support.stripe_double import running_stripe_double

contract = load_infra_module("iam_contract")

MAIN = str(REPO_ROOT / "functions" / "main.py")
SHOP = Path("modules/shop")
STOREFRONT = "http://shop.test"
PUBLIC_BASE = "http://functions.test"
STRIPE_KEY = "sk_test_iam_contract"
WEBHOOK_SECRET = "whsec_iam_contract_" + "b" * 24
TASKS_INVOKER = f"tasks-email-invoker@{emu.TEST_PROJECT}.iam.gserviceaccount.com"
PLATFORM = "linux-x86_64"
FINGERPRINT = "machine-01-" + "ab" * 16
KEY_PATTERN = re.compile(r"\bGENX(?:-[A-Z0-9]{4,})+\b")
FUNCTIONS = tuple(function_names())  # functions/main.py (tests/infra/test_function_list.py)


def _secrets() -> dict[str, str]:
    """Every secret the shop has: what a function asks for is what is recorded."""
    return {
        **factories.TEST_SECRETS,
        "KEY_DERIVATION_SECRETS_PREVIOUS": factories.TEST_SECRETS["LICENSE_KEY_PEPPER"][::-1],
        "STRIPE_SECRET_KEY": STRIPE_KEY,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "SENDGRID_API_KEY": "SG.iam-contract-test",
    }


# -- local stand-ins: the Stripe double, SendGrid, served functions ------------------------


@dataclass
class Double:
    url: str

    def control(self, path: str, **form: Any) -> dict[str, Any]:
        answer = requests.post(f"{self.url}/_double/{path}", data=form, timeout=10)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def settled(self) -> bool:
        answer = requests.get(f"{self.url}/_double/events", timeout=10)
        return all(
            delivery["state"] != "pending"
            for summary in answer.json()["data"]
            for delivery in summary["deliveries"]
        )


@pytest.fixture(scope="module")
def stripe_double(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Double]:
    log_dir = tmp_path_factory.mktemp("double")
    with running_stripe_double(log_dir, WEBHOOK_SECRET, async_delay=0.1) as url:
        yield Double(url)


@dataclass
class FakeSendGrid:
    """Accepts v3 mail/send like SendGrid and keeps the plain-text bodies; answers 503
    to the next `unavailable` requests (a provider outage)."""

    port: int = 0
    texts: list[tuple[str, str]] = field(default_factory=list)  # (to, text)
    unavailable: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def to(self, address: str) -> list[str]:
        with self.lock:
            return [text for to, text in self.texts if to == address]


@pytest.fixture(scope="module")
def sendgrid() -> Iterator[FakeSendGrid]:
    fake = FakeSendGrid()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            with fake.lock:
                refuse = fake.unavailable > 0
                fake.unavailable -= 1 if refuse else 0
            if refuse:
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            to = body["personalizations"][0]["to"][0]["email"]
            text = next(c["value"] for c in body["content"] if c["type"] == "text/plain")
            with fake.lock:
                fake.texts.append((to, text))
            self.send_response(202)
            self.send_header("X-Message-Id", f"sg-{len(fake.texts)}")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


class RoutedContainer:
    """What `get_container()` returns here: the container of the function whose request
    is running (each function has its own, as each runs in its own instance)."""

    def __init__(self, containers: dict[str, Container]) -> None:
        self.containers = containers

    def __getattr__(self, name: str) -> Any:
        function = current_function.get()
        if function is None:
            raise AssertionError("a function ran without being attributed")
        return getattr(self.containers[function], name)


def serve(recorder: Recorder, target: str) -> tuple[Any, str]:
    app = recorder.labelled(create_app(target, MAIN), target)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}/"


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


# -- driving every function ----------------------------------------------------------------


@dataclass(frozen=True)
class Observed:
    operations: dict[str, set[tuple[str, str]]]
    resources: dict[str, str]  # names the code used -> Terraform's names


@pytest.fixture(scope="module")
def observed(
    firestore_emulator: str,
    storage_emulator: str,
    tasks_emulator: emu.TasksEmulator,
    stripe_double: Double,
    sendgrid: FakeSendGrid,
    tmp_path_factory: pytest.TempPathFactory,
) -> Observed:
    tmp = tmp_path_factory.mktemp("iam")
    key_file = tmp / "url-signer.json"
    key_file.write_text(json.dumps(new_service_account_key(emu.TEST_PROJECT)))
    emu.reset_firestore(firestore_emulator, emu.TEST_PROJECT)
    stripe_double.control("reset")
    price_id = ensure_catalog(client_for(STRIPE_KEY, stripe_double.url)).price_id

    with pytest.MonkeyPatch.context() as monkeypatch, recording(monkeypatch) as recorder:
        monkeypatch.setenv(emu.FIRESTORE_ENV, firestore_emulator)
        monkeypatch.setenv(emu.STORAGE_ENV, storage_emulator)
        from google.cloud import firestore, storage

        webhook_server, webhook_url = serve(recorder, "stripe_webhook")
        worker_server, worker_url = serve(recorder, "send_email")
        # The cloud's shape: no emulator host in the settings, so every task carries
        # the OIDC identity of the tasks invoker; only the channel points at the emulator.
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            environment="local",
            gcp_project=emu.TEST_PROJECT,
            storefront_url=STOREFRONT,
            storefront_origins=(STOREFRONT,),
            public_base_url=PUBLIC_BASE,
            artifacts_bucket=emu.TEST_BUCKET,
            url_signing_key_file=str(key_file),
            stripe_api_base=stripe_double.url,
            stripe_price_id=price_id,
            tasks_location=emu.TEST_TASKS_LOCATION,
            tasks_queue=emu.TEST_TASKS_QUEUE,
            tasks_emulator_host="",
            tasks_invoker_service_account=TASKS_INVOKER,
            email_worker_url=worker_url,
            mail_backend="sendgrid",
            sendgrid_api_host=f"http://127.0.0.1:{sendgrid.port}",
            email_sweep_after_seconds=60,
        )
        storage_clients: list[Any] = []

        def instance() -> Container:
            built = Container(settings, secrets=EnvSecrets(_secrets()))
            built.__dict__["db"] = firestore.Client(project=emu.TEST_PROJECT)
            client = storage.Client(project=emu.TEST_PROJECT)
            storage_clients.append(client)
            built.__dict__["artifacts"] = ArtifactStore(settings, client)
            built.__dict__["email_queue"] = CloudTasksEmailQueue(
                settings, client=tasks_emulator.client()
            )
            return built

        containers = {name: instance() for name in FUNCTIONS}
        setup = instance()  # test set-up: its operations are never attributed
        bucket = storage_clients[-1].bucket(emu.TEST_BUCKET)
        if not bucket.exists():
            storage_clients[-1].create_bucket(emu.TEST_BUCKET)
        for blob in storage_clients[-1].list_blobs(emu.TEST_BUCKET):
            bucket.delete_blob(blob.name)
        setup.publisher.publish(artifact_files(tmp / "dist"), "1.0.0")
        use_container(RoutedContainer(containers))  # type: ignore[arg-type]
        try:
            stripe_double.control("config", webhook_url=webhook_url)
            _drive(recorder, containers, setup, stripe_double, sendgrid, webhook_url)
            wait_until(stripe_double.settled, "Stripe deliveries settled")
            wait_until(lambda: _all_sent(setup), "every e-mail job sent")
            with recorder.acting_as("license_api"):
                containers["license_api"].license_service.close()  # flushes its counters
        finally:
            use_container(None)
            stripe_double.control("config", webhook_url="")
            webhook_server.shutdown()
            worker_server.shutdown()
            for built in [*containers.values(), setup]:
                built.db.close()
                built.email_queue.client.transport.close()
            for client in storage_clients:
                client.close()
        result = Observed(
            {
                name: {(op.action, op.resource) for op in ops}
                for name, ops in recorder.by_function.items()
            },
            _resource_names(settings),
        )
    return result


def _resource_names(settings: Settings) -> dict[str, str]:
    deployed = contract.read_deployment(TERRAFORM_ROOT).settings
    return {
        settings.artifacts_bucket: deployed["ARTIFACTS_BUCKET"],
        settings.tasks_queue: deployed["TASKS_QUEUE"],
        settings.tasks_invoker_service_account: deployed["TASKS_INVOKER_SERVICE_ACCOUNT"],
    }


def _all_sent(setup: Container) -> bool:
    jobs = list(setup.db.collection("email_jobs").stream())
    return bool(jobs) and all(
        (job.to_dict() or {}).get("state") == EmailJobState.SENT.value for job in jobs
    )


def _order_state(setup: Container, order_id: str) -> str | None:
    order = setup.orders.get(order_id)
    return order.state.value if order else None


def _drive(
    recorder: Recorder,
    containers: dict[str, Container],
    setup: Container,
    double: Double,
    sendgrid: FakeSendGrid,
    webhook_url: str,
) -> None:
    def call(function: str, method: str, path: str, **kwargs: Any) -> Any:
        with recorder.acting_as(function):
            client = create_app(function, MAIN).test_client()
            return client.open(path, method=method, **kwargs)

    origin = {"Origin": STOREFRONT}
    # checkout -> paid -> stripe_webhook fulfils -> task -> send_email -> SendGrid (down
    # at first: send_email queues the e-mail's retry, a task at its next attempt)
    sendgrid.unavailable = 1
    first = call("checkout", "POST", "/", json={"email": "ada@example.com"}, headers=origin)
    assert first.status_code == 200, first.get_data(as_text=True)
    second = call("checkout", "POST", "/", json={"email": "bob@example.com"}, headers=origin)
    assert second.status_code == 200, second.get_data(as_text=True)
    session_a, session_b = first.get_json()["id"], second.get_json()["id"]
    double.control(f"sessions/{session_a}/pay", outcome="paid")
    mail = wait_until(lambda: sendgrid.to("ada@example.com"), "fulfilment e-mail")[0]
    (key,) = KEY_PATTERN.findall(mail)
    (link,) = re.findall(re.escape(PUBLIC_BASE) + r"/d/[A-Za-z0-9_-]+", mail)

    # order_status polls (each poll counts against a rate limit)
    status = call("order_status", "GET", f"/?session_id={session_a}", headers=origin)
    assert status.status_code == 200, status.get_data(as_text=True)
    assert status.get_json()["state"] == OrderState.FULFILLED.value

    # download: the listing, then a redemption
    path = link.removeprefix(PUBLIC_BASE)
    listing = call("download", "GET", path, headers={"Accept": "application/json"})
    assert listing.status_code == 200, listing.get_data(as_text=True)
    redirect = call("download", "GET", f"{path}?platform={PLATFORM}")
    assert redirect.status_code == 302, redirect.get_data(as_text=True)

    # license_api: every operation, and the update link it hands out redeemed
    def license_call(operation: str, **body: Any) -> dict[str, Any]:
        answer = call(
            "license_api",
            "POST",
            f"/{operation}",
            json={"nonce": "iam-contract-nonce-0001", **body},
        )
        assert answer.status_code == 200, answer.get_data(as_text=True)
        result: dict[str, Any] = answer.get_json()
        return result

    assert license_call("validate", key=key)["status"] == "VALID"
    assert license_call("validate", key="GENX-0000-0000-0000-0000")["status"] in (
        "INVALID_KEY",
        "NOT_FOUND",
    )
    assert license_call("activate", key=key, fingerprint=FINGERPRINT)["status"] == "VALID"
    assert license_call("certificate", key=key, fingerprint=FINGERPRINT)["status"] == "VALID"
    offer = license_call(
        "updates", key=key, fingerprint=FINGERPRINT, current_version="0.9.0", platform=PLATFORM
    )
    update_link = offer["update"]["download"]["url"]
    redeemed = call("download", "GET", update_link.removeprefix(PUBLIC_BASE))
    assert redeemed.status_code == 302, redeemed.get_data(as_text=True)
    assert license_call("deactivate", key=key, fingerprint=FINGERPRINT)["status"] == "VALID"

    # resend_links: a buyer asks for the links again
    resent = call("resend_links", "POST", "/", json={"email": "ada@example.com"}, headers=origin)
    assert resent.status_code == 202, resent.get_data(as_text=True)
    wait_until(lambda: len(sendgrid.to("ada@example.com")) >= 2, "re-sent e-mail")

    # reconcile: a payment whose webhook never arrived
    double.control("config", webhook_url="")
    double.control(f"sessions/{session_b}/pay", outcome="paid")
    repaired = call("reconcile", "POST", "/", json={})
    assert repaired.status_code == 200, repaired.get_data(as_text=True)
    assert _order_state(setup, session_b) == OrderState.FULFILLED.value
    wait_until(lambda: sendgrid.to("bob@example.com"), "e-mail of the repaired order")

    # email_sweeper: a job recorded long ago and never delivered
    wait_until(lambda: _all_sent(setup), "e-mails so far sent")
    (job,) = [j for j in setup.email_jobs.by_customer(setup.orders.get(session_b).customer_id)]  # type: ignore[union-attr]
    stale_at = setup.clock.now() - timedelta(hours=1)
    setup.email_jobs.put(
        job.model_copy(
            update={"id": "email_stale_1", "state": EmailJobState.PENDING, "attempts": 0,
                    "sent_at": None, "updated_at": stale_at, "created_at": stale_at}
        )
    )  # fmt: skip
    swept = call("email_sweeper", "POST", "/", json={})
    assert swept.status_code == 200, swept.get_data(as_text=True)
    assert swept.get_json()["requeued"] >= 1
    wait_until(lambda: len(sendgrid.to("bob@example.com")) >= 2, "swept e-mail")

    # stripe_webhook: a refund and a dispute; and a refund whose session event never
    # arrived, so the webhook asks Stripe which session the payment belongs to
    third = call("checkout", "POST", "/", json={"email": "cy@example.com"}, headers=origin)
    assert third.status_code == 200, third.get_data(as_text=True)
    session_c = third.get_json()["id"]
    double.control(f"sessions/{session_c}/pay", outcome="paid")
    double.control("config", webhook_url=webhook_url)
    double.control(f"sessions/{session_c}/refund")
    double.control(f"sessions/{session_a}/refund")
    double.control(f"sessions/{session_b}/dispute")
    wait_until(
        lambda: _order_state(setup, session_a) == OrderState.REFUNDED.value, "refund applied"
    )
    wait_until(
        lambda: _order_state(setup, session_b) == OrderState.DISPUTED.value, "dispute applied"
    )


# -- the contract --------------------------------------------------------------------------


def test_every_function_holds_exactly_the_permissions_its_code_uses(observed: Observed) -> None:
    violations = contract.check(observed.operations, observed.resources, root=TERRAFORM_ROOT)
    assert violations == [], "\n".join(str(v) for v in violations)


def test_the_record_holds_what_each_function_is_known_to_do(observed: Observed) -> None:
    ops = observed.operations
    assert set(ops) == set(FUNCTIONS)
    # order_status reads the order and writes its rate-limit counter (the viewer-role bug)
    assert ("firestore.get", "orders") in ops["order_status"]
    assert any(a in {"firestore.upsert", "firestore.create", "firestore.update"}
               and r == "rate_limits" for a, r in ops["order_status"])  # fmt: skip
    # download signs through IAM (signBlob) and reads nothing directly; its only secret
    # keys the rate-limit ids and the audit's network hash
    assert ("storage.sign_url", emu.TEST_BUCKET) in ops["download"]
    assert {r for a, r in ops["download"] if a.startswith("secrets.")} == {"pseudonym-key"}
    # every rate-limited function keys its counters' ids
    for name in ("checkout", "order_status", "resend_links", "download", "license_api"):
        assert ("secrets.access", "pseudonym-key") in ops[name], name
    # enqueuers create tasks carrying the invoker's identity
    for name in ("stripe_webhook", "resend_links", "reconcile", "email_sweeper", "send_email"):
        assert ("tasks.create", emu.TEST_TASKS_QUEUE) in ops[name], name
        assert ("iam.act_as", TASKS_INVOKER) in ops[name], name
    # license_api: the pepper and the signing key, no derivation secret, no task
    license_secrets = {r for a, r in ops["license_api"] if a == "secrets.access"}
    assert license_secrets == {"license-key-pepper", "signing-private-key", "pseudonym-key"}
    assert not any(a.startswith(("tasks.", "iam.")) for a, _ in ops["license_api"])
    assert ("secrets.access", "sendgrid-api-key") in ops["send_email"]
    # resend_links looks nothing up (a buyer and a stranger cost the same): it counts
    # rate limits and queues a task; send_email looks the customer up and makes the job
    assert {r for a, r in ops["resend_links"] if a.startswith("firestore.")} <= {
        "rate_limits",
        "audit_log",
        "(database)",
    }
    assert {r for a, r in ops["resend_links"] if a == "secrets.access"} == {
        "license-key-pepper",
        "pseudonym-key",
    }
    assert ("firestore.query", "orders") in ops["send_email"]
    assert ("firestore.create", "email_jobs") in ops["send_email"]


# -- both failure modes fire (on a copy of the Terraform) ----------------------------------


def _order_status_back_to_viewer(root: Path) -> None:
    tail = "\n      enqueues_email = false\n    }\n    resend_links"
    replace_once(
        root / SHOP / "locals.tf",
        'project_roles  = ["roles/datastore.user"]' + tail,
        'project_roles  = ["roles/datastore.viewer"]' + tail,
    )


def _download_cannot_sign(root: Path) -> None:
    text = (root / SHOP / "iam.tf").read_text(encoding="utf-8")
    start = text.index('resource "google_service_account_iam_member" "download_signs_as_itself"')
    end = text.index("}\n", start) + 2
    (root / SHOP / "iam.tf").write_text(text[:start] + text[end:], encoding="utf-8")


def _license_api_gets_derivation_secret(root: Path) -> None:
    replace_once(
        root / SHOP / "locals.tf",
        'secrets        = ["signing-private-key", "license-key-pepper", "pseudonym-key"]',
        'secrets        = ["signing-private-key", "license-key-pepper", "pseudonym-key", '
        '"key-derivation-secret"]',
    )


def _license_api_may_enqueue(root: Path) -> None:
    replace_once(
        root / SHOP / "locals.tf",
        'secrets        = ["signing-private-key", "license-key-pepper", "pseudonym-key"]\n'
        '      project_roles  = ["roles/datastore.user"]\n'
        "      enqueues_email = false",
        'secrets        = ["signing-private-key", "license-key-pepper", "pseudonym-key"]\n'
        '      project_roles  = ["roles/datastore.user"]\n'
        "      enqueues_email = true",
    )


def _resend_links_gets_key_material(root: Path) -> None:
    replace_once(
        root / SHOP / "locals.tf",
        'secrets        = ["license-key-pepper", "pseudonym-key"]\n'
        '      project_roles  = ["roles/datastore.user"]\n'
        "      enqueues_email = true",
        "secrets        = local.key_material_secrets\n"
        '      project_roles  = ["roles/datastore.user"]\n'
        "      enqueues_email = true",
    )


def _download_without_pseudonym_key(root: Path) -> None:
    text = (root / SHOP / "locals.tf").read_text(encoding="utf-8")
    start = text.index("    download = {")
    old = 'secrets         = ["pseudonym-key"]'
    at = text.index(old, start)
    (root / SHOP / "locals.tf").write_text(
        text[:at] + "secrets         = []" + text[at + len(old) :], encoding="utf-8"
    )


def _checkout_reads_artifacts(root: Path) -> None:
    (root / SHOP / "iam.tf").write_text(
        (root / SHOP / "iam.tf").read_text(encoding="utf-8")
        + '\nresource "google_storage_bucket_iam_member" "checkout_reads_artifacts" {\n'
        "  bucket = google_storage_bucket.artifacts.name\n"
        '  role   = "roles/storage.objectViewer"\n'
        '  member = "serviceAccount:${local.deployed["checkout"].service_account_email}"\n'
        "}\n",
        encoding="utf-8",
    )


SEEDED: list[tuple[Callable[[Path], None], str, str]] = [
    (_order_status_back_to_viewer, "missing-permission", "order_status"),
    (_download_cannot_sign, "missing-permission", "download"),
    (_license_api_gets_derivation_secret, "unused-grant", "license_api"),
    (_license_api_may_enqueue, "unused-grant", "license_api"),
    (_checkout_reads_artifacts, "unused-grant", "checkout"),
    (_resend_links_gets_key_material, "unused-grant", "resend_links"),
    (_download_without_pseudonym_key, "missing-permission", "download"),
]


@pytest.mark.parametrize(
    ("seed", "rule", "function"), SEEDED, ids=[seed.__name__.lstrip("_") for seed, _, _ in SEEDED]
)
def test_the_contract_fails_on_a_seeded_grant(
    observed: Observed, terraform_copy: Path, seed: Callable[[Path], None], rule: str, function: str
) -> None:
    assert contract.check(observed.operations, observed.resources, root=terraform_copy) == []

    seed(terraform_copy)

    found = contract.check(observed.operations, observed.resources, root=terraform_copy)
    assert (rule, function) in {(v.rule, v.function) for v in found}, found


def test_a_broader_role_than_needed_is_reported(observed: Observed, terraform_copy: Path) -> None:
    reads_only = {
        **observed.operations,
        "order_status": {("firestore.get", "orders"), ("secrets.access", "pseudonym-key")},
    }

    found = contract.check(reads_only, observed.resources, root=terraform_copy)

    assert [(v.rule, v.function) for v in found] == [("broader-than-needed", "order_status")]


def test_an_operation_missing_from_the_table_is_reported(observed: Observed) -> None:
    odd = {
        **observed.operations,
        "checkout": {*observed.operations["checkout"], ("firestore.Listen", "(stream)")},
    }

    found = contract.check(odd, observed.resources, root=TERRAFORM_ROOT)

    assert [(v.rule, v.function) for v in found] == [("unknown-operation", "checkout")]


# -- the recorder's decoding of Firestore writes (no emulator) -----------------------------


def test_commit_writes_are_named_by_their_precondition() -> None:
    from google.cloud.firestore_v1.types import common, document, firestore, write

    base = "projects/p/databases/(default)/documents"

    def update(path: str, **precondition: Any) -> write.Write:
        current = common.Precondition(**precondition) if precondition else None
        return write.Write(
            update=document.Document(name=f"{base}/{path}"), current_document=current
        )

    request = firestore.CommitRequest(
        database="projects/p/databases/(default)",
        writes=[
            update("orders/cs_1", exists=False),
            update("licenses/l_1", exists=True),
            update("rate_limits/r_1"),
            write.Write(delete=f"{base}/activations/a_1"),
            update("licenses/l_1/notes/n_1", exists=False),
        ],
    )

    ops = gcp_recorder._firestore_ops("/google.firestore.v1.Firestore/Commit", request)

    assert ops == [
        ("firestore.create", "orders"),
        ("firestore.update", "licenses"),
        ("firestore.upsert", "rate_limits"),
        ("firestore.delete", "activations"),
        ("firestore.create", "notes"),
    ]
    empty = firestore.CommitRequest(database="projects/p/databases/(default)")
    assert gcp_recorder._firestore_ops("/google.firestore.v1.Firestore/Commit", empty) == [
        ("firestore.commit_empty", "(database)")
    ]


def test_hcl_expressions_the_contract_cannot_evaluate_are_refused() -> None:
    scope = {"a": ["x"], "m": {"f": {"on": True}, "g": {"on": False}}}

    assert contract.evaluate('${concat(["y"], local.a)}', scope) == ["y", "x"]
    assert contract.evaluate("${toset([for k, v in local.m : k if v.on])}", scope) == ["f"]
    with pytest.raises(contract.Unsupported):
        contract.evaluate("${setunion(local.a, local.a)}", scope)
