"""Terraform creates the database in the concurrency mode the transaction runner assumes."""

from __future__ import annotations

import hcl2
from hcl2.utils import SerializationOptions
from infra_helpers import REPO_ROOT, TERRAFORM_ROOT

from commerce.repositories import firestore_wire


def _databases() -> list[dict[str, object]]:
    options = SerializationOptions(strip_string_quotes=True, with_comments=False)
    found = []
    for path in sorted(TERRAFORM_ROOT.rglob("*.tf")):
        parsed = hcl2.loads(path.read_text(encoding="utf-8"), serialization_options=options)
        for entry in parsed.get("resource", []):
            found += list(entry.get("google_firestore_database", {}).values())
    return found


def test_terraform_creates_the_database_in_the_mode_the_runner_is_written_for() -> None:
    databases = _databases()
    assert len(databases) == 1
    # Explicit, not left to the API default: a default can change under the runner.
    assert databases[0]["concurrency_mode"] == firestore_wire.FIRESTORE_CONCURRENCY_MODE
    assert firestore_wire.FIRESTORE_CONCURRENCY_MODE == "PESSIMISTIC"


def test_the_docs_state_the_same_mode() -> None:
    for doc in ("docs/infrastructure.md", "docs/performance.md"):
        text = (REPO_ROOT / doc).read_text(encoding="utf-8")
        assert f"concurrency_mode = {firestore_wire.FIRESTORE_CONCURRENCY_MODE}" in text.replace(
            '"', ""
        ).replace("`", ""), doc
        assert "OPTIMISTIC" not in text, doc
