"""The delivery functions driven through functions-framework, in-process and in a
fresh interpreter (to see what the download function imports)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from functions_framework import create_app

from commerce.bootstrap import Container, use_container
from commerce.domain.models import EmailJobState
from commerce.domain.orders import OrderState
from commerce.domain.releases import Release
from tests.delivery.conftest import PUBLIC_BASE, Bought
from tests.support import factories

ROOT = Path(__file__).resolve().parents[2]
MAIN = str(ROOT / "functions" / "main.py")


@pytest.fixture
def installed(container: Container) -> Iterator[Container]:
    use_container(container)
    yield container
    use_container(None)


@pytest.fixture
def download_client(installed: Container):
    return create_app("download", MAIN).test_client()


def test_download_with_platform_answers_302_to_a_signed_url(
    download_client, release: Release, bought: Bought
) -> None:
    response = download_client.get(
        f"/d/{bought.token}?platform=windows-x86_64",
        headers={"X-Forwarded-For": "198.51.100.4", "User-Agent": "curl/8"},
    )

    assert response.status_code == 302
    assert "X-Goog-Signature=" in response.headers["Location"]
    assert "genx-1.0.0-windows-x86_64.zip" in response.headers["Location"]
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_browser_without_platform_gets_a_page_listing_files_sizes_and_checksums(
    download_client, release: Release, bought: Bought
) -> None:
    response = download_client.get(
        f"/d/{bought.token}", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    )

    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    for file in release.files:
        assert file.name in page
        assert file.sha256 in page
        assert f"{file.size:,} bytes" in page
        assert f"{PUBLIC_BASE}/d/{bought.token}?platform={file.platform}" in page


def test_api_client_without_platform_gets_json_listing(
    download_client, release: Release, bought: Bought
) -> None:
    response = download_client.get(f"/d/{bought.token}", headers={"Accept": "application/json"})

    assert response.status_code == 200
    body = response.get_json()
    assert body["version"] == "1.0.0"
    assert {f["sha256"] for f in body["files"]} == {f.sha256 for f in release.files}


def test_refused_links_answer_json_error_bodies(
    download_client, installed: Container, release: Release, bought: Bought
) -> None:
    assert download_client.get("/d/nothing-here").status_code == 404
    assert download_client.get("/d/nothing-here").get_json()["error"] == "token_unknown"

    installed.orders.update(bought.order_id, {"state": OrderState.REFUNDED})
    response = download_client.get(f"/d/{bought.token}?platform=linux-x86_64")
    assert response.status_code == 410
    assert response.get_json() == {
        "error": "order_refunded",
        "detail": "This order was refunded; its downloads are no longer available.",
    }
    assert download_client.post(f"/d/{bought.token}").status_code == 405


def test_send_email_rejects_bodies_other_than_a_job_id(installed: Container) -> None:
    client = create_app("send_email", MAIN).test_client()

    response = client.post("/", json={"job_id": "x", "key": "GENX-1234"})
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


def test_send_email_for_an_unknown_job_answers_2xx_so_the_task_stops(
    installed: Container,
) -> None:
    client = create_app("send_email", MAIN).test_client()

    response = client.post("/", json={"job_id": "email_missing"})
    assert response.status_code == 200
    assert response.get_json() == {"job_id": "email_missing", "state": "unknown"}


def test_email_sweeper_function_requeues_stale_jobs(
    installed: Container, bought: Bought, monkeypatch: pytest.MonkeyPatch
) -> None:
    queued: list[tuple[str, int]] = []

    class Recorder:
        def enqueue(self, job_id: str, *, attempt: int = 0) -> None:
            queued.append((job_id, attempt))

    installed.__dict__["email_queue"] = Recorder()
    job = factories.make_email_job(
        bought.purchase.customer, bought.purchase.order, id="email_stale_one"
    )
    installed.email_jobs.put(job)
    installed.clock.advance(seconds=installed.settings.email_sweep_after_seconds + 1)  # type: ignore[attr-defined]

    response = create_app("email_sweeper", MAIN).test_client().post("/")

    assert response.get_json() == {"requeued": 1}
    assert [job_id for job_id, _ in queued] == ["email_stale_one"]
    stored = installed.email_jobs.get("email_stale_one")
    assert stored is not None
    assert stored.state is EmailJobState.PENDING
