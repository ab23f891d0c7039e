"""The IAM contract: what each function's service account is granted in Terraform must
be exactly what its code was seen to use.

Input: per function, the Google Cloud operations its code performed (recorded by
tests/support/gcp_recorder.py while tests/infra/test_iam_contract.py drives every
function against the emulators), e.g. `("firestore.upsert", "rate_limits")` or
`("secrets.access", "license-key-pepper")`. The table in infra/iam_permissions.toml
turns each operation into IAM permissions on a resource (each entry cites Google's
documentation) and lists the permissions of the predefined roles Terraform grants.

The grants are read from the HCL (python-hcl2, as infra/tf_invariants.py does):
`local.functions[*].project_roles` and `.secrets` (wired into modules/function), and
every IAM member resource of modules/shop whose member is a function's account.
Anything this module does not understand is reported, never skipped.

Violations: a permission the code needs that no grant gives (`missing-permission`), a
grant none of whose permissions the code uses (`unused-grant`), a role where a
narrower one of the same family would do (`broader-than-needed`), and functions
deployed but never exercised or exercised but not deployed.

Resources are named as Terraform names them: `project`, `secret:<id>`,
`bucket:<resource name>`, `queue:<resource name>`, `sa:<resource name>` and
`sa:fn:<function>` (a function's own account).
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
from hcl2.utils import SerializationOptions

INFRA = Path(__file__).resolve().parent
DEFAULT_ROOT = INFRA / "terraform"
DEFAULT_TABLE = INFRA / "iam_permissions.toml"
SHOP = Path("modules/shop")
FUNCTION = Path("modules/function")

_OPTIONS = SerializationOptions(
    strip_string_quotes=True, with_comments=False, explicit_blocks=False
)
_OWN_ACCOUNT = "serviceAccount:${google_service_account.this.email}"
_DEPLOYED = re.compile(
    r"^serviceAccount:\$\{local\.deployed\[(?:\"(?P<name>\w+)\"|(?P<each>each\.key))\]"
    r"\.service_account_email\}$"
)
_FOR_NAMES = re.compile(
    r"^\[for (?P<k>\w+), (?P<v>\w+) in local\.(?P<map>\w+) : (?P=k) if (?P=v)\.(?P<attr>\w+)\]$"
)


class Unsupported(ValueError):
    """An HCL expression this contract cannot evaluate: teach it, do not skip it."""


@dataclass(frozen=True)
class Violation:
    rule: str
    function: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.function}: {self.detail}"


@dataclass(frozen=True)
class Grant:
    function: str
    role: str
    resource: str
    where: str


@dataclass(frozen=True)
class Requirement:
    permission: str
    on: str  # project | resource | self


@dataclass(frozen=True)
class Role:
    permissions: frozenset[str]
    narrower: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    operations: dict[str, tuple[Requirement, ...]]
    roles: dict[str, Role]


def load_table(path: Path = DEFAULT_TABLE) -> Table:
    raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    operations = {}
    for name, entry in raw.get("operation", {}).items():
        if not entry.get("docs"):
            raise ValueError(f"operation {name} cites no documentation")
        requires = tuple(Requirement(r["permission"], r["on"]) for r in entry["requires"])
        if any(r.on not in ("project", "resource", "self") for r in requires):
            raise ValueError(f"operation {name}: `on` must be project, resource or self")
        operations[name] = requires
    roles = {}
    for name, entry in raw.get("role", {}).items():
        if not entry.get("docs"):
            raise ValueError(f"role {name} cites no documentation")
        roles[name] = Role(frozenset(entry["permissions"]), tuple(entry.get("narrower", ())))
    return Table(operations, roles)


# -- reading the Terraform ---------------------------------------------------------------


@dataclass
class _Module:
    locals: dict[str, Any] = field(default_factory=dict)
    resources: list[tuple[str, str, dict[str, Any], str]] = field(default_factory=list)
    modules: dict[str, dict[str, Any]] = field(default_factory=dict)


def _load(directory: Path) -> _Module:
    module = _Module()
    for path in sorted(directory.glob("*.tf")):
        parsed = hcl2.loads(path.read_text(encoding="utf-8"), serialization_options=_OPTIONS)
        for block in parsed.get("locals", []):
            module.locals.update(block)
        for entry in parsed.get("resource", []):
            for kind, named in entry.items():
                for name, body in named.items():
                    module.resources.append((kind, name, body, f"{path.name}: {kind}.{name}"))
        for entry in parsed.get("module", []):
            module.modules.update(entry)
    return module


def _split_args(text: str) -> list[str]:
    args, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            args.append(text[start:i].strip())
            start = i + 1
    if text[start:].strip():
        args.append(text[start:].strip())
    return args


def evaluate(value: Any, scope: Mapping[str, Any]) -> Any:
    """The value of a local as parsed by python-hcl2: literals, `local.x`, `concat`,
    `toset`, and `[for k, v in local.m : k if v.attr]`. Anything else: Unsupported."""
    if isinstance(value, list):
        return [evaluate(item, scope) for item in value]
    if isinstance(value, dict):
        return {key: evaluate(item, scope) for key, item in value.items()}
    if not isinstance(value, str):
        return value
    if not (value.startswith("${") and value.endswith("}")):
        if "${" in value:
            raise Unsupported(f"string template {value!r}")
        return value
    return _expression(value[2:-1].strip(), scope)


def _expression(text: str, scope: Mapping[str, Any]) -> Any:
    if re.fullmatch(r"local\.\w+", text):
        name = text.split(".", 1)[1]
        if name not in scope:
            raise Unsupported(f"unknown local {name}")
        return evaluate(scope[name], scope)
    if text.startswith("concat(") and text.endswith(")"):
        joined: list[Any] = []
        for arg in _split_args(text[len("concat(") : -1]):
            part = _expression(arg, scope)
            if not isinstance(part, list):
                raise Unsupported(f"concat of a non-list {arg!r}")
            joined += part
        return joined
    if text.startswith("toset(") and text.endswith(")"):
        items = _expression(text[len("toset(") : -1], scope)
        return sorted(set(items))
    if match := _FOR_NAMES.match(text):
        source = _expression(f"local.{match['map']}", scope)
        return [key for key, item in source.items() if item.get(match["attr"]) is True]
    if text.startswith("[") and text.endswith("]"):
        try:
            parsed = json.loads(text)
        except ValueError:
            raise Unsupported(f"list expression {text!r}") from None
        return parsed
    if text.startswith('"') and text.endswith('"'):
        return json.loads(text)
    raise Unsupported(f"expression {text!r}")


@dataclass(frozen=True)
class Deployment:
    functions: tuple[str, ...]
    grants: dict[str, list[Grant]]
    settings: dict[str, str]  # environment variable -> resource it names
    secret_ids: frozenset[str]
    problems: tuple[Violation, ...]


def read_deployment(root: Path = DEFAULT_ROOT) -> Deployment:
    """Functions, their grants, and what the settings Terraform passes name."""
    shop, function = _load(Path(root) / SHOP), _load(Path(root) / FUNCTION)
    problems: list[Violation] = []
    functions: dict[str, Any] = evaluate(shop.locals["functions"], shop.locals)
    names = tuple(sorted(functions))
    grants: dict[str, list[Grant]] = {name: [] for name in names}

    problems += _check_module_wiring(shop)
    secret_role = _module_grants(function, problems)
    for name, spec in functions.items():
        for role in spec.get("project_roles", []):
            grants[name].append(Grant(name, role, "project", "locals.tf: project_roles"))
        for secret in spec.get("secrets", []):
            grants[name].append(Grant(name, secret_role, f"secret:{secret}", "locals.tf: secrets"))

    for kind, _label, body, where in shop.resources:
        member = body.get("member")
        members = body.get("members")
        text = json.dumps([member, members])
        refers = (
            "local.deployed" in text or "module.function" in text or "module.email_worker" in text
        )
        if not refers:
            continue
        if members is not None or not kind.endswith("_iam_member"):
            problems.append(
                Violation("unreadable-grant", "(terraform)", f"{where}: use an _iam_member")
            )
            continue
        match = _DEPLOYED.match(str(member))
        if match is None:
            problems.append(
                Violation("unreadable-grant", "(terraform)", f"{where}: member {member!r}")
            )
            continue
        try:
            holders = (
                [match["name"]]
                if match["name"]
                else list(evaluate(body.get("for_each"), shop.locals))
            )
        except Unsupported as error:
            problems.append(Violation("unreadable-grant", "(terraform)", f"{where}: {error}"))
            continue
        for holder in holders:
            resource = _grant_resource(kind, body, holder)
            if resource is None or holder not in grants:
                problems.append(
                    Violation("unreadable-grant", holder, f"{where}: cannot name its resource")
                )
                continue
            grants[holder].append(Grant(holder, str(body.get("role")), resource, where))

    secret_ids = frozenset(evaluate(shop.locals["secret_ids"], shop.locals))
    return Deployment(names, grants, _settings(shop), secret_ids, tuple(problems))


def _check_module_wiring(shop: _Module) -> list[Violation]:
    """functions.tf hands each function's own `secrets` and `project_roles` to its
    modules/function instance (the grants above are read from locals.tf)."""
    expected = {
        "email_worker": {
            "secret_ids": "${local.functions[local.email_worker].secrets}",
            "project_roles": "${local.functions[local.email_worker].project_roles}",
        },
        "function": {
            "for_each": "${local.other_functions}",
            "secret_ids": "${each.value.secrets}",
            "project_roles": "${each.value.project_roles}",
        },
    }
    problems = []
    if set(shop.modules) != set(expected):
        problems.append(
            Violation("unreadable-grant", "(terraform)", f"modules {sorted(shop.modules)}")
        )
    for name, args in expected.items():
        body = shop.modules.get(name, {})
        for arg, value in args.items():
            if body.get(arg) != value:
                problems.append(
                    Violation(
                        "unreadable-grant",
                        "(terraform)",
                        f"module {name}: {arg} = {body.get(arg)!r}, expected {value!r}",
                    )
                )
    return problems


def _module_grants(function: _Module, problems: list[Violation]) -> str:
    """modules/function grants its account project roles and secret access, nothing else.
    Returns the secret role."""
    secret_role = "(none)"  # noqa: S105 - a role name, not a secret
    for kind, _label, body, where in function.resources:
        if body.get("member") != _OWN_ACCOUNT:
            continue
        if (
            kind == "google_project_iam_member"
            and body.get("for_each") == "${var.project_roles}"
            and body.get("role") == "${each.value}"
        ):
            continue
        if (
            kind == "google_secret_manager_secret_iam_member"
            and body.get("for_each") == "${var.secret_ids}"
            and body.get("secret_id") == "${each.value}"
        ):
            secret_role = str(body.get("role"))
            continue
        problems.append(Violation("unreadable-grant", "(modules/function)", where))
    return secret_role


def _reference(text: Any, kind: str, attributes: tuple[str, ...]) -> str | None:
    pattern = rf"^\$\{{{kind}\.(\w+)\.({'|'.join(attributes)})\}}$"
    match = re.match(pattern, str(text))
    return match[1] if match else None


def _grant_resource(kind: str, body: dict[str, Any], holder: str) -> str | None:
    if kind == "google_project_iam_member":
        return "project"
    if kind == "google_storage_bucket_iam_member":
        name = _reference(body.get("bucket"), "google_storage_bucket", ("name", "id"))
        return f"bucket:{name}" if name else None
    if kind == "google_cloud_tasks_queue_iam_member":
        name = _reference(body.get("name"), "google_cloud_tasks_queue", ("name", "id"))
        return f"queue:{name}" if name else None
    if kind == "google_service_account_iam_member":
        account = str(body.get("service_account_id"))
        name = _reference(account, "google_service_account", ("name", "id"))
        if name:
            return f"sa:{name}"
        own = re.match(
            r'^\$\{local\.deployed\[(?:"(\w+)"|each\.key)\]\.service_account_id\}$', account
        )
        if own:
            return f"sa:fn:{own[1] or holder}"
        return None
    if kind == "google_secret_manager_secret_iam_member":
        secret = re.match(
            r'^\$\{google_secret_manager_secret\.app\["([\w-]+)"\]\.secret_id\}$',
            str(body.get("secret_id")),
        )
        return f"secret:{secret[1]}" if secret else None
    return None


def _settings(shop: _Module) -> dict[str, str]:
    """What ARTIFACTS_BUCKET, TASKS_QUEUE and TASKS_INVOKER_SERVICE_ACCOUNT name."""
    env = str(shop.locals.get("base_env", ""))
    found = {}
    for variable in ("ARTIFACTS_BUCKET", "TASKS_QUEUE", "TASKS_INVOKER_SERVICE_ACCOUNT"):
        match = re.search(rf"\b{variable}\s*=\s*([\w.]+)", env)
        if match is None:
            continue
        expression = match[1]
        if bucket := re.fullmatch(r"google_storage_bucket\.(\w+)\.name", expression):
            found[variable] = f"bucket:{bucket[1]}"
        elif account := re.fullmatch(r"google_service_account\.(\w+)\.email", expression):
            found[variable] = f"sa:{account[1]}"
        elif expression.startswith("local."):
            value = _expression(expression, shop.locals)
            for kind, label, body, _where in shop.resources:
                if (
                    kind == "google_cloud_tasks_queue"
                    and evaluate(body.get("name"), shop.locals) == value
                ):
                    found[variable] = f"queue:{label}"
    return found


# -- the check ---------------------------------------------------------------------------


def required_permissions(
    function: str,
    operations: Iterable[tuple[str, str]],
    resources: Mapping[str, str],
    table: Table,
) -> tuple[dict[tuple[str, str], set[str]], list[Violation]]:
    """(permission, resource) -> the operations that need it; and what cannot be mapped."""
    required: dict[tuple[str, str], set[str]] = {}
    problems = []
    for action, resource in sorted(set(operations)):
        requirements = table.operations.get(action)
        if requirements is None:
            problems.append(
                Violation(
                    "unknown-operation",
                    function,
                    f"{action} on {resource}: add it to infra/iam_permissions.toml",
                )
            )
            continue
        for requirement in requirements:
            if requirement.on == "project":
                target: str | None = "project"
            elif requirement.on == "self":
                target = f"sa:fn:{function}"
            elif action == "secrets.access":
                target = f"secret:{resource}"
            else:
                target = resources.get(resource)
            if target is None:
                problems.append(
                    Violation(
                        "unmapped-resource",
                        function,
                        f"{action} on {resource!r}: no Terraform resource is known by that name",
                    )
                )
                continue
            required.setdefault((requirement.permission, target), set()).add(f"{action} {resource}")
    return required, problems


def check(
    observed: Mapping[str, Iterable[tuple[str, str]]],
    resources: Mapping[str, str],
    *,
    root: Path = DEFAULT_ROOT,
    table: Table | None = None,
) -> list[Violation]:
    """Every violation of the contract (empty: Terraform grants exactly what is used).

    `resources` maps the names the code used (bucket, queue, service account email) to
    Terraform's names (see `read_deployment(...).settings`)."""
    table = table or load_table()
    deployment = read_deployment(root)
    violations = list(deployment.problems)
    for name in deployment.functions:
        if name not in observed:
            violations.append(Violation("not-exercised", name, "deployed but never driven"))
    for name in sorted(set(observed) - set(deployment.functions)):
        violations.append(Violation("not-deployed", name, "exercised but not in local.functions"))
    for name in deployment.functions:
        if name not in observed:
            continue
        required, problems = required_permissions(name, observed[name], resources, table)
        violations += problems
        grants = deployment.grants[name]
        for grant in grants:
            if grant.role not in table.roles:
                violations.append(
                    Violation(
                        "unknown-role", name, f"{grant.role} ({grant.where}) is not in the table"
                    )
                )
        for (permission, target), why in sorted(required.items()):
            if not any(
                grant.resource == target
                and permission in table.roles.get(grant.role, Role(frozenset(), ())).permissions
                for grant in grants
            ):
                violations.append(
                    Violation(
                        "missing-permission",
                        name,
                        f"{permission} on {target}, needed by {', '.join(sorted(why))}",
                    )
                )
        for grant in grants:
            role = table.roles.get(grant.role)
            if role is None:
                continue
            used = {
                permission
                for (permission, target) in required
                if target == grant.resource and permission in role.permissions
            }
            if not used:
                violations.append(
                    Violation(
                        "unused-grant",
                        name,
                        f"{grant.role} on {grant.resource} ({grant.where}): "
                        "nothing it grants is used",
                    )
                )
                continue
            for narrower in role.narrower:
                if used <= table.roles[narrower].permissions:
                    violations.append(
                        Violation(
                            "broader-than-needed",
                            name,
                            f"{grant.role} on {grant.resource} ({grant.where}): {narrower} "
                            f"grants all it uses ({', '.join(sorted(used))})",
                        )
                    )
    return violations
