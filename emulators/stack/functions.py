"""The Cloud Functions: defined once, by functions/main.py, and what each may read.

A function is a top-level `def` of functions/main.py decorated with
`@functions_framework.http`. That is the only list. Everything else that names the
functions is derived from it (the local stack, `free_ports`, the tests' lists) or
checked against it by tests/infra/test_function_list.py: emulators/ports.json (a
fixed local port each), infra/bundle.py's ENTRY_POINTS, Terraform's
`local.functions` (HCL cannot import Python), the secrets table below, and the
functions bench/coldstart_bench.py measures. Adding a function in one place only
fails that test.

main.py is parsed, not imported: it changes while people work and may not import yet,
and importing it would load the commerce package and its SDKs into `make status`.
Standard library only.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

from emulators.stack.ports import REPO_ROOT

MAIN = Path("functions") / "main.py"

# The secrets each function may read, as Terraform grants them (`secrets` of each
# function in infra/terraform/modules/shop/locals.tf, Secret Manager ids there;
# `commerce.secrets.SecretName` maps one to the other). The local stack hands a function
# only these, so a function that reads a secret it is not granted fails locally as it
# would in the cloud. tests/infra/test_function_list.py checks this table against the
# Terraform.
_KEY_MATERIAL = (
    "LICENSE_KEY_PEPPER",
    "KEY_DERIVATION_SECRET",
    "KEY_DERIVATION_SECRETS_PREVIOUS",
)
FUNCTION_SECRETS: Mapping[str, frozenset[str]] = {
    "checkout": frozenset({"STRIPE_SECRET_KEY", "PSEUDONYM_KEY"}),
    "stripe_webhook": frozenset({"STRIPE_WEBHOOK_SECRET", "STRIPE_SECRET_KEY", *_KEY_MATERIAL}),
    "download": frozenset({"PSEUDONYM_KEY"}),
    "send_email": frozenset({"SENDGRID_API_KEY", *_KEY_MATERIAL}),
    "order_status": frozenset({"PSEUDONYM_KEY"}),
    "resend_links": frozenset({"LICENSE_KEY_PEPPER", "PSEUDONYM_KEY"}),
    "license_api": frozenset({"SIGNING_PRIVATE_KEY", "LICENSE_KEY_PEPPER", "PSEUDONYM_KEY"}),
    "reconcile": frozenset({"STRIPE_SECRET_KEY", *_KEY_MATERIAL}),
    "email_sweeper": frozenset(),
}


def _top_level_defs(root: Path) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    main = root / MAIN
    if not main.is_file():
        return []
    tree = ast.parse(main.read_text(encoding="utf-8"), filename=str(main))
    return [node for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)]


def _is_http_decorator(node: ast.expr) -> bool:
    """`@functions_framework.http` (also called, `@functions_framework.http()`)."""
    target = node.func if isinstance(node, ast.Call) else node
    return (
        isinstance(target, ast.Attribute)
        and target.attr == "http"
        and isinstance(target.value, ast.Name)
        and target.value.id == "functions_framework"
    )


def function_names(root: Path = REPO_ROOT) -> list[str]:
    """Every Cloud Function the project deploys, in the order main.py defines them."""
    return [
        node.name
        for node in _top_level_defs(root)
        if any(_is_http_decorator(decorator) for decorator in node.decorator_list)
    ]


def defined_functions(candidates: Iterable[str], root: Path = REPO_ROOT) -> list[str]:
    """The `candidates` that functions/main.py defines at top level (decorated or not)."""
    defined = {node.name for node in _top_level_defs(root)}
    return [name for name in candidates if name in defined]
