"""Cloud Storage that accepts connections and never answers: every call of the
artifact store ends after its per-request timeout and a bounded retry
(adapters/artifacts.py; the library's defaults are 60 s per request, retried for
120 s), and within a spent request budget no call is started at all."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from google.api_core.exceptions import RetryError

from commerce.adapters import artifacts
from commerce.adapters.artifacts import ArtifactStore
from commerce.deadlines import DependencyTimeout, request_budget
from tests.delivery.conftest import make_settings
from tests.support.black_hole import BlackHole, black_hole
from tests.support.emulators import STORAGE_ENV


@pytest.fixture
def hung_storage(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ArtifactStore, BlackHole]]:
    with black_hole() as hole:
        monkeypatch.setenv(STORAGE_ENV, hole.url)
        yield ArtifactStore(make_settings()), hole


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda store: store.exists("a/b.zip"), id="exists"),
        pytest.param(lambda store: store.download_bytes("a/b.json"), id="download_bytes"),
        pytest.param(lambda store: store.verify_stored("a/b.zip", "AAAAAA==", 1), id="get_blob"),
        pytest.param(
            lambda store: store.upload_bytes("a/b.json", b"{}", "application/json"),
            id="upload_bytes",
        ),
    ],
)
def test_each_call_gives_up_after_its_timeout_and_a_bounded_retry(hung_storage, monkeypatch, call):
    store, hole = hung_storage
    monkeypatch.setattr(artifacts, "STORAGE_REQUEST_SECONDS", 0.2)
    monkeypatch.setattr(artifacts, "STORAGE_RETRY_SECONDS", 1.0)

    with pytest.raises(RetryError) as gave_up:
        call(store)

    assert "timed out" in str(gave_up.value.cause)
    assert hole.connections >= 1


def test_within_a_spent_request_budget_storage_is_not_called(hung_storage):
    store, hole = hung_storage

    with request_budget(0), pytest.raises(DependencyTimeout):
        store.exists("a/b.zip")

    assert hole.connections == 0
