"""The Terraform tree keeps its security invariants, and the checker catches breaches."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import hcl2
import pytest
from hcl2.utils import SerializationOptions
from infra_helpers import REPO_ROOT, TERRAFORM_ROOT, append, load_infra_module, replace_once

invariants = load_infra_module("tf_invariants")
bundle = load_infra_module("bundle")

SHOP = Path("modules/shop")
FUNCTION = Path("modules/function")


def _rules(root: Path) -> set[str]:
    return {violation.rule for violation in invariants.check_terraform(root)}


def _shop_locals() -> dict[str, object]:
    options = SerializationOptions(strip_string_quotes=True, with_comments=False)
    parsed = hcl2.loads(
        (TERRAFORM_ROOT / SHOP / "locals.tf").read_text(encoding="utf-8"),
        serialization_options=options,
    )
    merged: dict[str, object] = {}
    for block in parsed["locals"]:
        merged.update(block)
    return merged


def test_the_real_tree_has_no_violations() -> None:
    violations = invariants.check_terraform(TERRAFORM_ROOT)
    assert violations == [], "\n".join(str(v) for v in violations)


def test_one_function_is_deployed_per_entry_point_of_the_bundle() -> None:
    functions = _shop_locals()["functions"]
    assert isinstance(functions, dict)
    assert sorted(functions) == sorted(bundle.ENTRY_POINTS)


def test_only_the_workers_are_private_and_they_have_no_public_path() -> None:
    functions = _shop_locals()["functions"]
    assert isinstance(functions, dict)
    private = {name for name, fn in functions.items() if fn["public"] is not True}
    assert private == {"send_email", "reconcile", "email_sweeper"}
    assert all(functions[name]["path_rules"] == [] for name in private)


# -- seeded violations: each must make the checker fail with the right rule ---------


def _public_access_prevention_off(root: Path) -> None:
    replace_once(
        root / SHOP / "storage.tf",
        'name                        = "${var.project_id}-artifacts"\n'
        "  location                    = var.region\n"
        '  storage_class               = "STANDARD"\n'
        "  uniform_bucket_level_access = true\n"
        '  public_access_prevention    = "enforced"',
        'name                        = "${var.project_id}-artifacts"\n'
        "  location                    = var.region\n"
        '  storage_class               = "STANDARD"\n'
        "  uniform_bucket_level_access = true\n"
        '  public_access_prevention    = "inherited"',
    )


def _artifacts_readable_by_all_users(root: Path) -> None:
    append(
        root / SHOP / "storage.tf",
        'resource "google_storage_bucket_iam_member" "oops" {\n'
        "  bucket = google_storage_bucket.artifacts.name\n"
        '  role   = "roles/storage.objectViewer"\n'
        '  member = "allUsers"\n'
        "}\n",
    )


def _webhook_reads_artifacts(root: Path) -> None:
    append(
        root / SHOP / "iam.tf",
        'resource "google_storage_bucket_iam_member" "webhook_reads_artifacts" {\n'
        "  bucket = google_storage_bucket.artifacts.name\n"
        '  role   = "roles/storage.objectViewer"\n'
        '  member = "serviceAccount:${local.deployed["stripe_webhook"].service_account_email}"\n'
        "}\n",
    )


def _fine_grained_acl_on_artifacts(root: Path) -> None:
    replace_once(
        root / SHOP / "storage.tf",
        "  uniform_bucket_level_access = true\n"
        '  public_access_prevention    = "enforced"\n'
        "  force_destroy               = false\n"
        "  labels                      = local.labels\n\n"
        "  logging {\n"
        "    log_bucket = google_storage_bucket.access_logs.name\n"
        "  }\n\n"
        "  versioning {\n"
        "    enabled = true # an overwritten",
        "  uniform_bucket_level_access = false\n"
        '  public_access_prevention    = "enforced"\n'
        "  force_destroy               = false\n"
        "  labels                      = local.labels\n\n"
        "  logging {\n"
        "    log_bucket = google_storage_bucket.access_logs.name\n"
        "  }\n\n"
        "  versioning {\n"
        "    enabled = true # an overwritten",
    )


def _stripe_key_in_settings(root: Path) -> None:
    replace_once(
        root / "environments/production/terraform.tfvars.example",
        'LOG_LEVEL       = "INFO"',
        # Assembled at run time so the repository itself holds nothing key-shaped.
        'LOG_LEVEL       = "INFO"\n  STRIPE_KEY      = "'
        + "sk_"
        + "live_51HxQvLkQwErTy12345"
        + '"',
    )


def _secret_version_in_terraform(root: Path) -> None:
    append(
        root / SHOP / "secrets.tf",
        'resource "google_secret_manager_secret_version" "pepper" {\n'
        '  secret      = google_secret_manager_secret.app["license-key-pepper"].id\n'
        "  secret_data = var.pepper\n"
        "}\n",
    )


def _webhook_secret_literal(root: Path) -> None:
    replace_once(
        root / SHOP / "locals.tf",
        'MAIL_BACKEND                  = "sendgrid"',
        'MAIL_BACKEND                  = "sendgrid"\n'
        '    WEBHOOK_SIGNING = "' + "whsec" + '_AbCdEf0123456789"',
    )


def _secret_as_plain_env(root: Path) -> None:
    replace_once(
        root / SHOP / "locals.tf",
        'MAIL_BACKEND                  = "sendgrid"',
        'MAIL_BACKEND                  = "sendgrid"\n    SENDGRID_API_KEY = var.sendgrid_api_key',
    )


def _secrets_from_env_in_cloud(root: Path) -> None:
    replace_once(
        root / SHOP / "locals.tf",
        'SECRETS_BACKEND               = "secret-manager"',
        'SECRETS_BACKEND               = "env"',
    )


def _function_sharing_another_functions_account(root: Path) -> None:
    append(
        root / SHOP / "functions.tf",
        'resource "google_cloudfunctions2_function" "admin" {\n'
        '  name     = "admin"\n'
        "  location = var.region\n"
        "  service_config {\n"
        '    service_account_email = module.function["checkout"].service_account_email\n'
        "  }\n"
        "}\n",
    )


def _two_functions_one_account(root: Path) -> None:
    append(
        root / FUNCTION / "main.tf",
        'resource "google_cloudfunctions2_function" "twin" {\n'
        '  name     = "${var.name_prefix}-twin"\n'
        "  location = var.region\n"
        "  service_config {\n"
        "    service_account_email = google_service_account.this.email\n"
        "  }\n"
        "}\n",
    )


def _one_account_for_every_function(root: Path) -> None:
    replace_once(
        root / FUNCTION / "main.tf",
        "service_account_email            = google_service_account.this.email",
        "service_account_email            = var.runtime_service_account",
    )


def _production_lacks_a_resource(root: Path) -> None:
    append(
        root / "environments/staging/main.tf",
        'resource "google_storage_bucket" "scratch" {\n'
        '  name     = "scratch"\n'
        '  location = "EU"\n'
        "}\n",
    )


def _shared_state_prefix(root: Path) -> None:
    replace_once(
        root / "environments/production/versions.tf",
        'prefix = "genx-shop/production"',
        'prefix = "genx-shop/shared"',
    )


def _unpinned_provider(root: Path) -> None:
    replace_once(
        root / FUNCTION / "versions.tf",
        'version = "~> 8.7"',
        'version = ">= 5.0"',
    )


_ENABLED = "  depends_on = [google_project_service.enabled]\n"


def _security_policy_races_compute(root: Path) -> None:
    replace_once(root / SHOP / "cloud_armor.tf", "\n" + _ENABLED, "")


def _security_policy_waits_for_another_api(root: Path) -> None:
    replace_once(
        root / SHOP / "cloud_armor.tf",
        _ENABLED,
        '  depends_on = [google_project_service.enabled["storage.googleapis.com"]]\n',
    )


def _service_account_races_iam(root: Path) -> None:
    replace_once(
        root / SHOP / "service_accounts.tf",
        'may invoke send_email and nothing else."\n\n' + _ENABLED,
        'may invoke send_email and nothing else."\n',
    )


def _function_module_races_its_apis(root: Path) -> None:
    # Every call of modules/function must wait; the other call still does here.
    path = root / SHOP / "functions.tf"
    text = path.read_text(encoding="utf-8")
    start = text.index("  depends_on = [\n")
    end = text.index("  ]\n", start) + len("  ]\n")
    path.write_text(text[:start] + text[end:], encoding="utf-8")


def _unclassified_resource_type(root: Path) -> None:
    append(
        root / SHOP / "apis.tf",
        'resource "google_pubsub_topic" "events" {\n'
        '  name       = "events"\n'
        "  depends_on = [google_project_service.enabled]\n"
        "}\n",
    )


def _api_never_enabled(root: Path) -> None:
    replace_once(root / SHOP / "apis.tf", '    "monitoring.googleapis.com",\n', "")


def _builder_cannot_read_staged_source(root: Path) -> None:
    path = root / SHOP / "service_accounts.tf"
    text = path.read_text(encoding="utf-8")
    start = text.index('resource "google_project_iam_member" "builder_reads_staged_source"')
    path.write_text(text[:start], encoding="utf-8")
    for file in ("functions.tf",):
        target = root / SHOP / file
        target.write_text(
            target.read_text(encoding="utf-8").replace(
                "    google_project_iam_member.builder_reads_staged_source,\n", ""
            ),
            encoding="utf-8",
        )


def _builder_without_log_writer(root: Path) -> None:
    replace_once(root / SHOP / "service_accounts.tf", '    "roles/logging.logWriter",\n', "")


def _functions_built_before_the_builder_may_read(root: Path) -> None:
    path = root / SHOP / "functions.tf"
    text = path.read_text(encoding="utf-8")
    assert text.count("    google_storage_bucket_iam_member.builder_reads_source,\n") == 2
    path.write_text(
        text.replace("    google_storage_bucket_iam_member.builder_reads_source,\n", "", 1),
        encoding="utf-8",
    )


SEEDED: list[tuple[Callable[[Path], None], str]] = [
    (_public_access_prevention_off, "private-artifacts"),
    (_artifacts_readable_by_all_users, "private-artifacts"),
    (_webhook_reads_artifacts, "private-artifacts"),
    (_fine_grained_acl_on_artifacts, "private-artifacts"),
    (_stripe_key_in_settings, "no-secret-literal"),
    (_secret_version_in_terraform, "no-secret-literal"),
    (_webhook_secret_literal, "no-secret-literal"),
    (_secret_as_plain_env, "secrets-from-secret-manager"),
    (_secrets_from_env_in_cloud, "secrets-from-secret-manager"),
    (_function_sharing_another_functions_account, "own-service-account"),
    (_two_functions_one_account, "own-service-account"),
    (_one_account_for_every_function, "own-service-account"),
    (_production_lacks_a_resource, "same-environments"),
    (_shared_state_prefix, "same-environments"),
    (_unpinned_provider, "pinned-providers"),
    (_security_policy_races_compute, "api-enabled-first"),
    (_security_policy_waits_for_another_api, "api-enabled-first"),
    (_service_account_races_iam, "api-enabled-first"),
    (_function_module_races_its_apis, "api-enabled-first"),
    (_unclassified_resource_type, "api-enabled-first"),
    (_api_never_enabled, "api-enabled-first"),
    (_builder_cannot_read_staged_source, "build-service-account"),
    (_builder_without_log_writer, "build-service-account"),
    (_functions_built_before_the_builder_may_read, "build-service-account"),
]


@pytest.mark.parametrize(
    ("seed", "rule"), SEEDED, ids=[seed.__name__.lstrip("_") for seed, _ in SEEDED]
)
def test_the_checker_fails_on_a_seeded_violation(
    terraform_copy: Path, seed: Callable[[Path], None], rule: str
) -> None:
    assert _rules(terraform_copy) == set(), "the pristine copy must pass first"

    seed(terraform_copy)

    assert rule in _rules(terraform_copy)


def test_the_command_line_exits_non_zero_on_a_violation(terraform_copy: Path) -> None:
    assert invariants.main([str(terraform_copy)]) == 0
    _artifacts_readable_by_all_users(terraform_copy)
    assert invariants.main([str(terraform_copy)]) == 1


def test_depending_on_the_one_api_a_resource_uses_is_enough(terraform_copy: Path) -> None:
    replace_once(
        terraform_copy / SHOP / "cloud_armor.tf",
        _ENABLED,
        '  depends_on = [google_project_service.enabled["compute.googleapis.com"]]\n',
    )
    assert _rules(terraform_copy) == set()


def test_every_resource_type_in_the_tree_is_mapped_to_its_api() -> None:
    blocks = [
        b
        for b in invariants._load_blocks(TERRAFORM_ROOT)
        if b.kind == "resource" and b.labels[0] != invariants.ENABLING_TYPE
    ]
    apis = {b.labels[0]: invariants.api_of(b) for b in blocks}
    assert None not in apis.values(), apis
    # Spot checks against Google's API names.
    assert apis["google_service_account"] == "iam.googleapis.com"
    assert apis["google_firestore_database"] == "firestore.googleapis.com"
    assert apis["google_compute_ssl_policy"] == "compute.googleapis.com"
    assert apis["google_monitoring_alert_policy"] == "monitoring.googleapis.com"
    assert apis["google_project_service_identity"] == "firestore.googleapis.com"
    assert apis["google_cloudfunctions2_function"] == "cloudfunctions.googleapis.com"


def test_the_bootstrap_apis_are_the_ones_the_runbook_enables_by_hand() -> None:
    runbook = (REPO_ROOT / "docs/runbooks/first-deploy.md").read_text(encoding="utf-8")
    command = runbook[runbook.index("gcloud services enable") :].split("\n\n")[0]
    for api in invariants.BOOTSTRAP_APIS:
        assert api in command, api
