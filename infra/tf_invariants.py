"""Offline invariants of the Terraform tree (no provider, no network).

`terraform validate` needs the providers, which cannot be downloaded here, so the
security properties the shop relies on are asserted on the parsed HCL instead:

- every Cloud Function runs as its own service account, created beside it;
- no secret value is written in the configuration (and none can reach the state);
- the artifacts bucket is private and only the download function may read it;
- secrets reach the functions only through Secret Manager;
- provider versions are pinned to one major;
- every environment root declares the same modules, resources, variables and outputs.

`check_terraform(directory)` returns the violations found (empty = all good); tests
run it on the real tree and on copies with a seeded violation.

Usage (from the repository root):  python infra/tf_invariants.py [infra/terraform]
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2
from hcl2.utils import SerializationOptions

DEFAULT_ROOT = Path(__file__).resolve().parent / "terraform"

_PARSE_OPTIONS = SerializationOptions(
    strip_string_quotes=True, with_comments=False, explicit_blocks=False
)

# Shapes of real credentials, and attributes that would put a secret value in the
# Terraform state.
SECRET_PATTERNS = {
    "Stripe secret key": re.compile(r"\b[sr]k_(?:live|test)_[A-Za-z0-9]{8,}"),
    "Stripe webhook secret": re.compile(r"\bwhsec_[A-Za-z0-9+/=]{8,}"),
    "SendGrid API key": re.compile(r"\bSG\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),
    "private key": re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----"),
    "secret_data attribute": re.compile(r"\bsecret_data(?:_wo)?\b"),
    "secret version resource": re.compile(r"\bgoogle_secret_manager_secret_version\b"),
}
TEXT_SUFFIXES = (".tf", ".tfvars", ".hcl", ".example", ".json", ".yaml", ".yml", ".md")

# Environment variable names that would carry a secret.
SECRET_ENV_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|PEPPER|PRIVATE|API_KEY|CREDENTIAL|_TOKEN\b")
ENV_MAP_NAMES = frozenset({"environment_variables", "app_settings", "base_env"})
PUBLIC_MEMBERS = ("allUsers", "allAuthenticatedUsers")
FUNCTION_TYPES = ("google_cloudfunctions2_function", "google_cloudfunctions_function")
_SA_EMAIL_REF = re.compile(
    r"^\$\{google_service_account\.(?P<name>[A-Za-z0-9_-]+)(?P<index>\[each\.key\])?\.email\}$"
)
_ENV_KEY = re.compile(r"\b([A-Z][A-Z0-9_]*)\s*=")
# The google/google-beta major every versions.tf pins (`~> 8.N`: no surprise major
# upgrade at `terraform init`); infra/tf_schema.py checks the tree against that release.
PROVIDER_MAJOR = 8


@dataclass(frozen=True)
class Violation:
    rule: str
    where: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.where}: {self.detail}"


@dataclass(frozen=True)
class Block:
    """One resource/module/... block with the module directory it lives in."""

    kind: str  # resource, module, data, variable, output, locals, terraform, provider
    labels: tuple[str, ...]
    body: dict[str, Any]
    directory: Path
    file: Path

    @property
    def where(self) -> str:
        return f"{self.file}: {self.kind} {'.'.join(self.labels)}"


def check_terraform(root: Path = DEFAULT_ROOT) -> list[Violation]:
    """All invariant violations under `root` (a tree with modules/ and environments/)."""
    root = Path(root)
    blocks = list(_load_blocks(root))
    violations: list[Violation] = []
    violations += _check_secret_literals(root)
    violations += _check_function_identities(blocks)
    violations += _check_artifacts_bucket(blocks)
    violations += _check_secret_env(blocks, root)
    violations += _check_provider_pins(blocks)
    violations += _check_environments_match(blocks, root)
    return violations


# -- loading -------------------------------------------------------------------------


def _tf_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*.tf")):
        if ".terraform" not in path.parts:
            yield path


@functools.lru_cache(maxsize=256)
def _parse(text: str) -> dict[str, Any]:
    # Parsing is the slow part; identical files (tests check many copies) parse once.
    # Callers only read the result.
    parsed: dict[str, Any] = hcl2.loads(text, serialization_options=_PARSE_OPTIONS)
    return parsed


def _load_blocks(root: Path) -> Iterator[Block]:
    for path in _tf_files(root):
        parsed = _parse(path.read_text(encoding="utf-8"))
        relative = path.relative_to(root)
        for kind, entries in parsed.items():
            for entry in entries:
                yield from _blocks_of(kind, entry, path.parent, relative)


def _blocks_of(kind: str, entry: dict[str, Any], directory: Path, file: Path) -> Iterator[Block]:
    depth = {"resource": 2, "data": 2, "module": 1, "variable": 1, "output": 1, "provider": 1}
    if kind not in depth:
        yield Block(kind, (), entry, directory, file)
        return
    if depth[kind] == 1:
        for name, body in entry.items():
            yield Block(kind, (name,), body, directory, file)
    else:
        for type_name, named in entry.items():
            for name, body in named.items():
                yield Block(kind, (type_name, name), body, directory, file)


def _resources(blocks: list[Block], *types: str) -> list[Block]:
    return [b for b in blocks if b.kind == "resource" and b.labels[0] in types]


def _first(value: Any) -> Any:
    """A nested block is serialised as a list of dicts; take the first."""
    if isinstance(value, list) and value:
        return value[0]
    return value


# -- rules ---------------------------------------------------------------------------


def _check_secret_literals(root: Path) -> list[Violation]:
    found = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or ".terraform" in path.parts:
            continue
        if not path.name.endswith(TEXT_SUFFIXES) or path.name == ".checkov.yaml":
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            for label, pattern in SECRET_PATTERNS.items():
                if pattern.search(line):
                    found.append(
                        Violation(
                            "no-secret-literal",
                            f"{path.relative_to(root)}:{number}",
                            f"{label} in the configuration; secret values go into Secret "
                            "Manager out of band, never into Terraform code or state",
                        )
                    )
    return found


def _check_function_identities(blocks: list[Block]) -> list[Violation]:
    violations = []
    accounts = {(b.directory, b.labels[1]): b for b in _resources(blocks, "google_service_account")}
    users: dict[tuple[Path, str], list[Block]] = {}
    for function in _resources(blocks, *FUNCTION_TYPES):
        config = _first(function.body.get("service_config")) or {}
        email = config.get("service_account_email") or function.body.get("service_account_email")
        match = _SA_EMAIL_REF.match(email) if isinstance(email, str) else None
        if match is None:
            violations.append(
                Violation(
                    "own-service-account",
                    function.where,
                    f"service_account_email is {email!r}; it must be the email of a "
                    "google_service_account declared beside the function",
                )
            )
            continue
        key = (function.directory, match["name"])
        account = accounts.get(key)
        if account is None:
            violations.append(
                Violation(
                    "own-service-account",
                    function.where,
                    f"google_service_account.{match['name']} is not declared in the same module",
                )
            )
            continue
        users.setdefault(key, []).append(function)
        function_each = function.body.get("for_each") or function.body.get("count")
        account_each = account.body.get("for_each") or account.body.get("count")
        one_to_one = (
            function_each is None and account_each is None and match["index"] is None
        ) or (
            function_each is not None
            and function_each == account_each
            and match["index"] is not None
            and "count" not in function.body
        )
        if not one_to_one:
            violations.append(
                Violation(
                    "own-service-account",
                    function.where,
                    f"google_service_account.{match['name']} is not created one-to-one with "
                    "the function (same for_each, indexed by each.key)",
                )
            )
    for (_, name), functions in users.items():
        if len(functions) > 1:
            names = ", ".join(f.where for f in functions)
            violations.append(
                Violation(
                    "own-service-account",
                    names,
                    f"google_service_account.{name} is shared by {len(functions)} functions",
                )
            )
    return violations


def _references(value: Any, resource_type: str, name: str) -> bool:
    return isinstance(value, str) and f"{resource_type}.{name}." in value


def _check_artifacts_bucket(blocks: list[Block]) -> list[Violation]:
    buckets = [
        b
        for b in _resources(blocks, "google_storage_bucket")
        if "artifacts" in b.labels[1] or "artifacts" in str(b.body.get("name", ""))
    ]
    if not buckets:
        return [Violation("private-artifacts", "(tree)", "no artifacts bucket is declared")]
    violations = []
    for bucket in buckets:
        if bucket.body.get("uniform_bucket_level_access") is not True:
            violations.append(
                Violation(
                    "private-artifacts", bucket.where, "uniform_bucket_level_access must be true"
                )
            )
        if bucket.body.get("public_access_prevention") != "enforced":
            violations.append(
                Violation(
                    "private-artifacts", bucket.where, 'public_access_prevention must be "enforced"'
                )
            )
        if "predefined_acl" in bucket.body:
            violations.append(Violation("private-artifacts", bucket.where, "no predefined ACLs"))
        violations += _artifacts_grants(blocks, bucket)
    return violations


def _artifacts_grants(blocks: list[Block], bucket: Block) -> list[Violation]:
    violations = []
    name = bucket.labels[1]
    for block in blocks:
        if block.kind != "resource" or not block.labels[0].startswith("google_storage_"):
            continue
        if block is bucket or not _references(
            block.body.get("bucket"), "google_storage_bucket", name
        ):
            continue
        kind = block.labels[0]
        if kind in (
            "google_storage_bucket_iam_policy",
            "google_storage_bucket_acl",
        ) or kind.endswith("_acl"):
            violations.append(
                Violation(
                    "private-artifacts",
                    block.where,
                    f"{kind} on the artifacts bucket: grant single members instead",
                )
            )
            continue
        members = block.body.get("members") or [block.body.get("member")]
        for member in members if isinstance(members, list) else [members]:
            text = str(member)
            if any(public in text for public in PUBLIC_MEMBERS):
                violations.append(
                    Violation("private-artifacts", block.where, f"public member {text}")
                )
            elif "download" not in text:
                violations.append(
                    Violation(
                        "private-artifacts",
                        block.where,
                        f"{text} may access the artifacts bucket; only the download function may",
                    )
                )
    return violations


def _walk(value: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    yield key, value
    if isinstance(value, dict):
        for child_key, child in value.items():
            yield from _walk(child, child_key)
    elif isinstance(value, list):
        for child in value:
            yield from _walk(child, key)


def _env_keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return {str(k) for k in value}
    if isinstance(value, str):
        return set(_ENV_KEY.findall(value))
    return set()


def _check_secret_env(blocks: list[Block], root: Path) -> list[Violation]:
    violations = []
    backend_values: list[str] = []
    for block in blocks:
        for key, value in _walk(block.body):
            if key in ENV_MAP_NAMES:
                for name in sorted(_env_keys(value)):
                    if SECRET_ENV_NAME.search(name) and name != "SECRETS_BACKEND":
                        violations.append(
                            Violation(
                                "secrets-from-secret-manager",
                                block.where,
                                f"{name} is passed as a plain setting; secrets are read from "
                                "Secret Manager",
                            )
                        )
                backend_values += _secrets_backend(value)
            if key in ("secret_environment_variables", "secret_volumes"):
                for entry in value if isinstance(value, list) else [value]:
                    secret = entry.get("secret") if isinstance(entry, dict) else None
                    if not (isinstance(secret, str) and "google_secret_manager_secret." in secret):
                        violations.append(
                            Violation(
                                "secrets-from-secret-manager",
                                block.where,
                                f"{key} must name a google_secret_manager_secret, not {secret!r}",
                            )
                        )
    for path in sorted(root.rglob("*.tfvars*")):
        text = path.read_text(encoding="utf-8")
        for name in sorted(set(_ENV_KEY.findall(text))):
            if SECRET_ENV_NAME.search(name) and name != "SECRETS_BACKEND":
                violations.append(
                    Violation(
                        "secrets-from-secret-manager",
                        str(path.relative_to(root)),
                        f"{name} set in a variables file; secrets go into Secret Manager",
                    )
                )
    if not backend_values:
        violations.append(
            Violation(
                "secrets-from-secret-manager",
                "(tree)",
                'no function environment sets SECRETS_BACKEND = "secret-manager"',
            )
        )
    violations += [
        Violation(
            "secrets-from-secret-manager",
            "(tree)",
            f'SECRETS_BACKEND is {value!r}; it must be "secret-manager" in the cloud',
        )
        for value in backend_values
        if value != "secret-manager"
    ]
    return violations


def _secrets_backend(value: Any) -> list[str]:
    if isinstance(value, dict) and "SECRETS_BACKEND" in value:
        return [str(value["SECRETS_BACKEND"])]
    if isinstance(value, str):
        return re.findall(r'\bSECRETS_BACKEND\s*=\s*"([^"]*)"', value)
    return []


def _check_provider_pins(blocks: list[Block]) -> list[Violation]:
    violations = []
    for block in blocks:
        if block.kind != "terraform":
            continue
        for providers in block.body.get("required_providers", []):
            for name, spec in providers.items():
                version = spec.get("version", "") if isinstance(spec, dict) else ""
                if name in ("google", "google-beta") and not re.fullmatch(
                    rf"~>\s*{PROVIDER_MAJOR}\.\d+(\.\d+)?", version
                ):
                    violations.append(
                        Violation(
                            "pinned-providers",
                            f"{block.file}",
                            f"provider {name} version {version!r} is not pinned to "
                            f"~> {PROVIDER_MAJOR}.x",
                        )
                    )
    return violations


def _environment_shape(blocks: list[Block], directory: Path) -> set[str]:
    shape = set()
    for block in blocks:
        if block.directory != directory or block.kind in ("locals", "terraform"):
            continue
        shape.add(f"{block.kind} {'.'.join(block.labels)}")
        if block.kind == "module":
            shape.add(f"module {block.labels[0]} source={block.body.get('source')}")
            shape.update(f"module {block.labels[0]} arg={arg}" for arg in block.body)
    return shape


def _backend_prefix(blocks: list[Block], directory: Path) -> str | None:
    for block in blocks:
        if block.kind == "terraform" and block.directory == directory:
            for backend in block.body.get("backend", []):
                gcs = backend.get("gcs")
                if isinstance(gcs, dict):
                    return str(gcs.get("prefix"))
    return None


def _check_environments_match(blocks: list[Block], root: Path) -> list[Violation]:
    environments = sorted(p for p in (root / "environments").glob("*") if p.is_dir())
    if len(environments) < 2:
        return [
            Violation("same-environments", "environments/", "expected staging and production roots")
        ]
    violations = []
    reference = environments[0]
    expected = _environment_shape(blocks, reference)
    for environment in environments:
        prefix = _backend_prefix(blocks, environment)
        if prefix is None or environment.name not in prefix:
            violations.append(
                Violation(
                    "same-environments",
                    str(environment.relative_to(root)),
                    f"gcs backend prefix {prefix!r} must name the environment (separate state)",
                )
            )
        if environment == reference:
            continue
        shape = _environment_shape(blocks, environment)
        for missing in sorted(expected - shape):
            violations.append(
                Violation(
                    "same-environments",
                    str(environment.relative_to(root)),
                    f"lacks `{missing}` (present in {reference.name})",
                )
            )
        for extra in sorted(shape - expected):
            violations.append(
                Violation(
                    "same-environments",
                    str(environment.relative_to(root)),
                    f"has `{extra}` that {reference.name} lacks",
                )
            )
    return violations


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else DEFAULT_ROOT
    violations = check_terraform(root)
    for violation in violations:
        print(violation, file=sys.stderr)
    print(f"{len(violations)} Terraform invariant violation(s) under {root}")
    return 1 if violations else 0


if __name__ == "__main__":
    raise SystemExit(main())
