"""The feature folders share file names (Polar's convention, adapted; docs/architecture.md):
`endpoints.py` request parsing and rendering, `schemas.py` request bodies and outside
payloads, `service.py` the service, `repository.py` storage beyond the unit of work.
A folder without one of them says why here; the roles are checked on the source."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_layers import PACKAGE, imports_of

STANDARD = ("endpoints.py", "schemas.py", "service.py", "repository.py")
UNIT_OF_WORK_ONLY = "all its storage goes through the unit of work"
# Every feature folder, with the standard names it does not have and why.
ABSENT: dict[str, dict[str, str]] = {
    "purchase": {
        "endpoints.py": "its functions answer a JSON body or a redirect in functions/main.py",
        "service.py": "several services, each named after its job: checkout, webhooks, "
        "fulfillment, reconciliation (with the ledger)",
        "repository.py": UNIT_OF_WORK_ONLY,
    },
    "delivery": {
        "service.py": "two services, named after their job: download, email_worker",
        "repository.py": UNIT_OF_WORK_ONLY,
    },
    "licensing": {},
    "storefront": {
        "schemas.py": "the re-send request is still beside its service in resend.py",
        "service.py": "two services, named after their job: order_status, resend",
        "repository.py": UNIT_OF_WORK_ONLY,
    },
    "releases": {
        "endpoints.py": "no function serves releases (the operator CLI: delivery/cli.py)",
        "schemas.py": "a release's values and rules are pure: commerce.domain.releases",
    },
}
SDKS = {"google", "stripe", "sendgrid", "flask", "werkzeug", "functions_framework"}


def feature_folders() -> set[str]:
    return {
        path.parent.name
        for path in PACKAGE.glob("*/__init__.py")
        if path.parent.name not in {"domain", "repositories", "adapters"}
    }


def test_every_feature_folder_is_in_the_table() -> None:
    assert feature_folders() == set(ABSENT)


@pytest.mark.parametrize("feature", sorted(ABSENT))
def test_a_feature_folder_has_the_agreed_file_names_or_says_why_not(feature: str) -> None:
    present = {name for name in STANDARD if (PACKAGE / feature / name).is_file()}

    assert present == set(STANDARD) - set(ABSENT[feature])
    assert all(reason.strip() for reason in ABSENT[feature].values())


@pytest.mark.parametrize("feature", sorted(ABSENT))
def test_only_a_features_endpoints_speak_http(feature: str) -> None:
    speaking = {
        path.name
        for path in (PACKAGE / feature).glob("*.py")
        if {name.split(".")[0] for name in imports_of(path)} & {"flask", "werkzeug"}
    }
    assert speaking <= {"endpoints.py"}


@pytest.mark.parametrize(
    "path",
    sorted(PACKAGE.glob("*/schemas.py")),
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_schemas_are_pure_values(path: Path) -> None:
    names = imports_of(path)
    assert not [name for name in names if name.split(".")[0] in SDKS]
    assert not [
        name
        for name in names
        if name.startswith(("commerce.repositories", "commerce.bootstrap", "commerce.adapters"))
    ]


@pytest.mark.parametrize("feature", sorted(ABSENT))
def test_no_feature_service_wires_itself_from_the_composition_root(feature: str) -> None:
    # Endpoints may name the container's type (the license API reads its services).
    wiring = {
        path.name
        for path in (PACKAGE / feature).glob("*.py")
        if "commerce.bootstrap" in imports_of(path)
    }
    assert wiring <= {"endpoints.py"}
