"""The Terraform tree is valid against the Google provider's own schema, and the
checker catches a misspelt or missing argument anywhere.

The schema comes from the provider's prebuilt CDK bindings on PyPI (downloaded by pip
on first use, then cached under .cache/terraform-schema; see infra/tf_schema.py).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from infra_helpers import TERRAFORM_ROOT, append, load_infra_module, replace_once

tf_schema = load_infra_module("tf_schema")

SHOP = Path("modules/shop")
FUNCTION = Path("modules/function")


@pytest.fixture(scope="module")
def schemas() -> dict[str, Any]:
    result: dict[str, Any] = tf_schema.schemas_for(tf_schema.allowed_release(TERRAFORM_ROOT))
    return result


def _details(root: Path, schemas: dict[str, Any]) -> list[str]:
    return [f"{v.where}: {v.detail}" for v in tf_schema.check_against(root, schemas)]


def test_the_real_tree_matches_the_schema_of_the_release_versions_tf_allows(
    schemas: dict[str, Any],
) -> None:
    violations = tf_schema.check_against(TERRAFORM_ROOT, schemas)
    assert violations == [], "\n".join(str(v) for v in violations)
    release = tf_schema.allowed_release(TERRAFORM_ROOT)
    assert {s.provider_version for s in schemas.values()} == {release}
    assert set(schemas) == {"google", "google-beta"}


def test_the_schema_knows_the_types_and_arguments_the_tree_relies_on(
    schemas: dict[str, Any],
) -> None:
    # A sanity check of the extraction itself, on facts from the provider docs.
    google = schemas["google"]
    job = google.structs[google.resources["google_cloud_scheduler_job"]]
    assert job["attributes"]["name"] is True  # required
    assert job["attributes"]["time_zone"] is False
    assert "timezone" not in job["attributes"]
    http_target, required = job["blocks"]["http_target"]
    assert required is False
    assert google.structs[http_target]["attributes"]["uri"] is True
    secret = google.structs[google.resources["google_secret_manager_secret"]]
    assert secret["blocks"]["replication"][1] is True  # a required nested block
    assert "google_project_service_identity" not in google.resources
    assert "google_project_service_identity" in schemas["google-beta"].resources
    assert "google_project" in google.data_sources


# -- a misspelt argument in ANY .tf file fails ---------------------------------------

_RESOURCE = re.compile(r'^(resource|data) "(?P<type>[a-z0-9_]+)" "(?P<name>[^"]+)" \{$')
_ARGUMENT = re.compile(r"^  (?P<name>[a-z][a-z0-9_]*)(?P<rest>\s*=.*)$")


def _first_argument_of_each_block(path: Path) -> list[tuple[int, str, str]]:
    """(line index, block address, argument) of the first provider argument per block."""
    found = []
    lines = path.read_text(encoding="utf-8").splitlines()
    address = None
    for index, line in enumerate(lines):
        header = _RESOURCE.match(line)
        if header:
            address = f"{header['type']}.{header['name']}"
            continue
        argument = _ARGUMENT.match(line)
        if address and argument and argument["name"] not in tf_schema.META_ARGUMENTS:
            found.append((index, address, argument["name"]))
            address = None
    return found


TF_FILES = sorted(
    str(p.relative_to(TERRAFORM_ROOT))
    for p in TERRAFORM_ROOT.rglob("*.tf")
    if _first_argument_of_each_block(p)
)


def test_every_module_has_files_to_mutate() -> None:
    folders = {str(Path(f).parent) for f in TF_FILES}
    assert {"modules/shop", "modules/function"} <= folders
    assert len(TF_FILES) >= 10


@pytest.mark.parametrize("relative", TF_FILES)
def test_a_misspelt_argument_in_any_file_is_reported(
    terraform_copy: Path, schemas: dict[str, Any], relative: str
) -> None:
    path = terraform_copy / relative
    lines = path.read_text(encoding="utf-8").splitlines()
    targets = _first_argument_of_each_block(path)
    for index, _, name in targets:
        lines[index] = lines[index].replace(f"  {name}", f"  {name}s", 1)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    details = "\n".join(_details(terraform_copy, schemas))

    for _, address, name in targets:
        assert f"{address}: unknown argument '{name}s'" in details, details


def test_timezone_for_time_zone_in_a_scheduler_job_is_reported(
    terraform_copy: Path, schemas: dict[str, Any]
) -> None:
    # The misspelling that passed fmt, the invariants and checkov before this check.
    path = terraform_copy / SHOP / "scheduler.tf"
    text = path.read_text(encoding="utf-8")
    assert "  time_zone " in text
    path.write_text(text.replace("  time_zone ", "  timezone  ", 1), encoding="utf-8")

    details = _details(terraform_copy, schemas)

    assert any("unknown argument 'timezone'" in d for d in details), details


# -- seeded defects at every depth -----------------------------------------------------


def _nested_argument_misspelt(root: Path) -> None:
    replace_once(
        root / FUNCTION / "main.tf", "service_account_email            =", "service_account_mail  ="
    )


def _nested_block_misspelt(root: Path) -> None:
    replace_once(root / SHOP / "firestore.tf", "  ttl_config {}", "  ttl {}")


def _dynamic_block_content_misspelt(root: Path) -> None:
    replace_once(
        root / SHOP / "firestore.tf",
        "field_path   = fields.value.fieldPath",
        "fieldpath    = fields.value.fieldPath",
    )


def _unknown_resource_type(root: Path) -> None:
    append(
        root / SHOP / "apis.tf",
        'resource "google_project_services" "extra" {\n  project = var.project_id\n}\n',
    )


def _unknown_data_source(root: Path) -> None:
    append(root / SHOP / "apis.tf", 'data "google_projects_of_mine" "all" {}\n')


def _beta_only_resource_without_the_beta_provider(root: Path) -> None:
    replace_once(root / SHOP / "iam.tf", "  provider = google-beta\n", "")


def _required_argument_dropped(root: Path) -> None:
    replace_once(root / FUNCTION / "main.tf", "  location    = var.region\n", "")


def _required_nested_argument_dropped(root: Path) -> None:
    replace_once(
        root / SHOP / "cloud_armor.tf",
        "        count        = var.checkout_rate_limit_per_minute\n",
        "",
    )


def _required_block_dropped(root: Path) -> None:
    replace_once(root / SHOP / "secrets.tf", "  replication {\n    auto {}\n  }\n", "")


def _provider_version_the_schema_does_not_describe(root: Path) -> None:
    path = root / FUNCTION / "versions.tf"
    text = path.read_text(encoding="utf-8")
    assert text.count("      version = ") == 1
    path.write_text(
        re.sub(r'      version = "[^"]+"', '      version = "~> 5.40"', text), encoding="utf-8"
    )


def _provider_argument_misspelt(root: Path) -> None:
    replace_once(
        root / "environments/production/versions.tf",
        '  region  = var.region\n}\n\nprovider "google-beta"',
        '  regions = var.region\n}\n\nprovider "google-beta"',
    )


def _lock_file_pins_another_release(root: Path) -> None:
    (root / "environments/production/.terraform.lock.hcl").write_text(
        'provider "registry.terraform.io/hashicorp/google" {\n'
        '  version     = "6.20.0"\n'
        '  constraints = "~> 6.20"\n'
        "}\n",
        encoding="utf-8",
    )


SEEDED = [
    (_nested_argument_misspelt, "unknown argument 'service_config.service_account_mail'"),
    (_nested_block_misspelt, "unknown block 'ttl'"),
    (_dynamic_block_content_misspelt, "unknown argument 'fields.fieldpath'"),
    (_unknown_resource_type, "resource type google_project_services does not exist"),
    (_unknown_data_source, "data type google_projects_of_mine does not exist"),
    (
        _beta_only_resource_without_the_beta_provider,
        "resource type google_project_service_identity does not exist in the google provider",
    ),
    (_required_argument_dropped, "required argument location is missing"),
    (
        _required_nested_argument_dropped,
        "required argument rule.rate_limit_options.rate_limit_threshold.count is missing",
    ),
    (_required_block_dropped, "required block replication is missing"),
    (_provider_version_the_schema_does_not_describe, "version '~> 5.40' does not allow"),
    (_lock_file_pins_another_release, "locks google 6.20.0"),
    (_provider_argument_misspelt, "provider google: unknown argument 'regions'"),
]


@pytest.mark.parametrize(
    ("seed", "expected"), SEEDED, ids=[seed.__name__.lstrip("_") for seed, _ in SEEDED]
)
def test_the_checker_reports_a_seeded_defect(
    terraform_copy: Path, schemas: dict[str, Any], seed: Any, expected: str
) -> None:
    assert _details(terraform_copy, schemas) == [], "the pristine copy must pass first"

    seed(terraform_copy)

    details = _details(terraform_copy, schemas)
    assert any(expected in d for d in details), "\n".join(details)


def test_the_command_line_exits_non_zero_on_a_violation(terraform_copy: Path) -> None:
    assert tf_schema.main([str(terraform_copy)]) == 0
    _required_block_dropped(terraform_copy)
    assert tf_schema.main([str(terraform_copy)]) == 1


# -- the pieces, without a download -------------------------------------------------------


def _prop(name: str, type_: dict[str, Any], anchor: str | None, optional: bool) -> dict[str, Any]:
    docs = {"summary": "x"}
    if anchor:
        docs["remarks"] = (
            "Docs at Terraform Registry: {@link https://registry.terraform.io/providers/"
            f"hashicorp/google/9.9.9/docs/resources/thing#{anchor} Thing#{anchor}}}"
        )
    prop: dict[str, Any] = {"name": name, "type": type_, "docs": docs}
    if optional:
        prop["optional"] = True
    return prop


def test_compact_schema_uses_registry_names_required_flags_and_nested_structs() -> None:
    nested = "p.thing.ThingRetryConfig"
    assembly = {
        "types": {
            "p.provider.GoogleProvider": {
                "kind": "class",
                "docs": {
                    "summary": "Represents a {@link https://registry.terraform.io/providers/"
                    "hashicorp/google/9.9.9/docs google}."
                },
            },
            "p.provider.GoogleProviderConfig": {
                "kind": "interface",
                "datatype": True,
                "properties": [_prop("region", {"primitive": "string"}, "region", optional=True)],
            },
            "p.thing.Thing": {
                "kind": "class",
                "docs": {
                    "summary": "Represents a {@link https://registry.terraform.io/providers/"
                    "hashicorp/google/9.9.9/docs/resources/thing google_thing}."
                },
            },
            "p.thing.ThingConfig": {
                "kind": "interface",
                "datatype": True,
                "interfaces": ["cdktf.TerraformMetaArguments"],
                "properties": [
                    _prop("name", {"primitive": "string"}, "name", optional=False),
                    # Re-casing would give ipv6_access_type too; the anchor is authoritative.
                    _prop("timeZone", {"primitive": "string"}, "time_zone", optional=True),
                    _prop("sha256Hash", {"primitive": "string"}, None, optional=True),
                    _prop(
                        "retryConfig",
                        {
                            "union": {
                                "types": [
                                    {"fqn": "cdktf.IResolvable"},
                                    {
                                        "collection": {
                                            "kind": "array",
                                            "elementtype": {"fqn": nested},
                                        }
                                    },
                                ]
                            }
                        },
                        "retry_config",
                        optional=True,
                    ),
                    _prop(
                        "labels",
                        {"collection": {"kind": "map", "elementtype": {"primitive": "string"}}},
                        "labels",
                        optional=True,
                    ),
                ],
            },
            nested: {
                "kind": "interface",
                "datatype": True,
                "properties": [_prop("retryCount", {"primitive": "number"}, "retry_count", False)],
            },
        }
    }
    source = tf_schema.SchemaSource("google", "9.9.9", "pkg", "1.0.0", "0" * 64)

    compact = tf_schema.compact_schema(assembly, source)

    config = compact["structs"][compact["resources"]["google_thing"]]
    assert config["attributes"] == {
        "name": True,
        "time_zone": False,
        "sha256_hash": False,
        "labels": False,
    }
    assert config["blocks"] == {"retry_config": [nested, False]}
    assert compact["structs"][nested] == {"attributes": {"retry_count": True}, "blocks": {}}
    provider = compact["structs"][compact["provider_config"]]
    assert provider == {"attributes": {"region": False}, "blocks": {}}


def test_compact_schema_refuses_a_package_of_another_release() -> None:
    assembly = {
        "types": {
            "p.provider.GoogleProvider": {
                "kind": "class",
                "docs": {
                    "summary": "Represents a {@link https://registry.terraform.io/providers/"
                    "hashicorp/google/9.9.9/docs google}."
                },
            },
            "p.provider.GoogleProviderConfig": {
                "kind": "interface",
                "datatype": True,
                "properties": [_prop("region", {"primitive": "string"}, "region", optional=True)],
            },
            "p.thing.Thing": {
                "kind": "class",
                "docs": {
                    "summary": "Represents a {@link https://registry.terraform.io/providers/"
                    "hashicorp/google/6.1.0/docs/resources/thing google_thing}."
                },
            },
            "p.thing.ThingConfig": {"kind": "interface", "datatype": True, "properties": []},
        }
    }
    source = tf_schema.SchemaSource("google", "9.9.9", "pkg", "1.0.0", "0" * 64)
    with pytest.raises(ValueError, match=r"6\.1\.0"):
        tf_schema.compact_schema(assembly, source)


@pytest.mark.parametrize(
    ("version", "constraint", "allowed"),
    [
        ("6.50.0", "~> 6.20", True),
        ("7.0.0", "~> 6.20", False),
        ("6.19.9", "~> 6.20", False),
        ("6.20.5", "~> 6.20.1", True),
        ("6.21.0", "~> 6.20.1", False),
        ("8.7.0", "~> 8.7", True),
        ("8.7.0", ">= 8.0, < 9.0", True),
        ("9.0.0", ">= 8.0, < 9.0", False),
        ("8.7.0", "8.7.0", True),
        ("8.7.1", "= 8.7.0", False),
    ],
)
def test_version_constraints_follow_terraform_semantics(
    version: str, constraint: str, allowed: bool
) -> None:
    assert tf_schema.satisfies(version, constraint) is allowed


def test_every_listed_package_is_pinned_by_hash_and_every_release_has_both_providers() -> None:
    for source in tf_schema.SOURCES:
        assert re.fullmatch(r"[0-9a-f]{64}", source.sha256), source
    for release in tf_schema.releases():
        providers = {s.provider for s in tf_schema.SOURCES if s.provider_version == release}
        assert providers == {"google", "google-beta"}, release
