"""The layering the architecture promises (docs/architecture.md), checked on the source:
feature packages import no Google Cloud library and no storage adapter; the domain and
the unit-of-work port import neither SDKs nor services."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "shared" / "commerce"
FEATURES = ("purchase", "delivery", "licensing", "storefront", "releases")
# Feature modules allowed to import a storage adapter: none (releases, too, go through
# the unit of work).
FEATURE_REPOSITORIES: set[str] = set()


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def modules(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (PACKAGE / folder).rglob("*.py"))


@pytest.mark.parametrize("path", modules(*FEATURES), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_feature_modules_import_no_google_library(path: Path) -> None:
    assert not [name for name in imports_of(path) if name.split(".")[0] == "google"]


@pytest.mark.parametrize("path", modules(*FEATURES), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_feature_services_reach_storage_only_through_the_unit_of_work(path: Path) -> None:
    if str(path.relative_to(PACKAGE)) in FEATURE_REPOSITORIES:
        return
    assert not [name for name in imports_of(path) if name.startswith("commerce.repositories")]


@pytest.mark.parametrize(
    "path",
    [*modules("domain"), PACKAGE / "unit_of_work.py"],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_the_domain_and_the_port_import_no_sdk_and_no_service(path: Path) -> None:
    outside = {"google", "stripe", "sendgrid", "flask", "functions_framework"}
    names = imports_of(path)
    assert not [name for name in names if name.split(".")[0] in outside]
    assert not [
        name
        for name in names
        if name.startswith(("commerce.repositories", "commerce.bootstrap"))
        or name.split(".")[:2] in [["commerce", f] for f in FEATURES]
    ]
