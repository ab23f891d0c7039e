"""The Cloud Functions are listed once, by functions/main.py; every other list agrees.

The list: top-level functions of functions/main.py decorated with
`@functions_framework.http` (emulators/stack/functions.py reads it). Checked against it:
emulators/ports.json (local ports), infra/bundle.py's ENTRY_POINTS, Terraform's
`local.functions` (HCL cannot import Python), the secrets the local stack hands each
function (against what Terraform grants it), and the functions the cold-start bench
measures. A function added in one place only fails here; the seeded tests below show
that each place is really read.
"""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import pytest
from infra_helpers import REPO_ROOT, TERRAFORM_ROOT, load_infra_module, replace_once

from bench import coldstart_bench
from commerce.secrets import SecretName
from emulators.stack import FUNCTION_SECRETS, SECRET_NAMES, function_names

contract = load_infra_module("iam_contract")

LOCALS = Path("modules/shop/locals.tf")
NEW_FUNCTION = (
    "\n\n@functions_framework.http\ndef gift_cards(request: flask.Request) -> flask.Response:\n"
    "    return json_response({})\n"
)


def _ports_json(root: Path) -> list[str]:
    data = json.loads((root / "emulators" / "ports.json").read_text(encoding="utf-8"))
    return list(data["functions"])


def _bundle_entry_points(root: Path) -> list[str]:
    """ENTRY_POINTS as written in infra/bundle.py (read, so a copied tree can be seeded)."""
    tree = ast.parse((root / "infra" / "bundle.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "ENTRY_POINTS" for target in node.targets
        ):
            return list(ast.literal_eval(node.value))
    raise AssertionError("infra/bundle.py has no ENTRY_POINTS")


def _terraform_functions(terraform: Path) -> list[str]:
    return list(contract.read_deployment(terraform).functions)


def list_mismatches(root: Path, terraform: Path) -> list[str]:
    """Every place whose list of functions differs from functions/main.py's."""
    defined = function_names(root)
    places = {
        "emulators/ports.json": _ports_json(root),
        "infra/bundle.py ENTRY_POINTS": _bundle_entry_points(root),
        "Terraform local.functions": _terraform_functions(terraform),
        "emulators/stack/functions.py FUNCTION_SECRETS": list(FUNCTION_SECRETS),
    }
    problems = []
    for place, names in places.items():
        missing, extra = set(defined) - set(names), set(names) - set(defined)
        if missing or extra or len(names) != len(set(names)):
            problems.append(f"{place}: missing {sorted(missing)}, not in main.py {sorted(extra)}")
    return problems


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """The files the lists live in, copied so a change can be seeded into one of them."""
    copy = tmp_path / "repo"
    for relative in ("functions/main.py", "emulators/ports.json", "infra/bundle.py"):
        (copy / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / relative, copy / relative)
    shutil.copytree(
        TERRAFORM_ROOT, copy / "infra" / "terraform", ignore=shutil.ignore_patterns(".terraform")
    )
    return copy


def test_main_defines_the_functions_and_every_list_agrees_with_it() -> None:
    assert len(function_names()) >= 9  # the parse found main.py's functions

    assert list_mismatches(REPO_ROOT, TERRAFORM_ROOT) == []


def test_a_function_added_to_main_only_is_reported_in_every_other_place(repo_copy: Path) -> None:
    with (repo_copy / "functions" / "main.py").open("a", encoding="utf-8") as main:
        main.write(NEW_FUNCTION)

    problems = list_mismatches(repo_copy, repo_copy / "infra" / "terraform")

    assert "gift_cards" in function_names(repo_copy)
    assert [problem.split(":")[0] for problem in problems] == [
        "emulators/ports.json",
        "infra/bundle.py ENTRY_POINTS",
        "Terraform local.functions",
        "emulators/stack/functions.py FUNCTION_SECRETS",
    ]
    assert all("missing ['gift_cards']" in problem for problem in problems)


def test_an_undecorated_helper_in_main_is_not_a_function(repo_copy: Path) -> None:
    with (repo_copy / "functions" / "main.py").open("a", encoding="utf-8") as main:
        main.write("\n\ndef helper(request: flask.Request) -> None:\n    return None\n")

    assert "helper" not in function_names(repo_copy)
    assert list_mismatches(repo_copy, repo_copy / "infra" / "terraform") == []


def test_a_port_for_a_function_main_does_not_define_is_reported(repo_copy: Path) -> None:
    replace_once(repo_copy / "emulators" / "ports.json", '"checkout": 9320,', '"gift_cards": 9320,')

    problems = list_mismatches(repo_copy, repo_copy / "infra" / "terraform")

    assert problems == [
        "emulators/ports.json: missing ['checkout'], not in main.py ['gift_cards']",
    ]


def test_a_function_deployed_by_terraform_only_is_reported(repo_copy: Path) -> None:
    terraform = repo_copy / "infra" / "terraform"
    replace_once(terraform / LOCALS, "    email_sweeper = {", "    email_sweepers = {")

    problems = list_mismatches(repo_copy, terraform)

    assert problems == [
        "Terraform local.functions: missing ['email_sweeper'], not in main.py ['email_sweepers']",
    ]


def _terraform_secrets(terraform: Path) -> dict[str, set[str]]:
    """Per function, the secrets (as environment variable names) its account may read."""
    by_id = {name.secret_manager_id: name.value for name in SecretName}
    deployment = contract.read_deployment(terraform)
    return {
        function: {
            by_id[grant.resource.removeprefix("secret:")]
            for grant in grants
            if grant.resource.startswith("secret:")
        }
        for function, grants in deployment.grants.items()
    }


def test_local_functions_get_exactly_the_secrets_terraform_grants_them() -> None:
    local = {name: set(secrets) for name, secrets in FUNCTION_SECRETS.items()}

    assert local == _terraform_secrets(TERRAFORM_ROOT)


def test_a_secret_granted_in_terraform_only_is_noticed(terraform_copy: Path) -> None:
    replace_once(
        terraform_copy / LOCALS,
        'secrets         = ["stripe-secret-key", "pseudonym-key"]',
        'secrets         = ["stripe-secret-key", "pseudonym-key", "signing-private-key"]',
    )

    granted = _terraform_secrets(terraform_copy)

    assert granted["checkout"] == {"STRIPE_SECRET_KEY", "PSEUDONYM_KEY", "SIGNING_PRIVATE_KEY"}
    assert granted["checkout"] != set(FUNCTION_SECRETS["checkout"])


def test_the_stack_knows_every_secret_the_shop_has() -> None:
    assert {name.value for name in SecretName} == SECRET_NAMES


def test_the_cold_start_bench_measures_only_functions_main_defines() -> None:
    measured = {case.function for case in coldstart_bench.CASES}

    assert measured
    assert measured <= set(function_names())
    assert set(coldstart_bench.DEFAULT_FUNCTIONS) <= measured
