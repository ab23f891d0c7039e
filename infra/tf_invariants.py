"""Offline invariants of the Terraform tree (no provider, no network).

`terraform validate` needs the providers, which cannot be downloaded here, so the
security properties the shop relies on are asserted on the parsed HCL instead:

- every Cloud Function runs as its own service account, created beside it;
- no secret value is written in the configuration (and none can reach the state);
- the artifacts bucket is private and only the download function may read it;
- secrets reach the functions only through Secret Manager;
- provider versions are pinned to one major;
- every resource of a Google API is ordered after that API's enablement
  (`google_project_service`), so a first apply on a fresh project does not race;
- the Cloud Build identity of the functions holds what Google documents for a custom
  build service account, including reading the staged function source;
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
    violations += _check_api_dependencies(blocks, root)
    violations += _check_build_service_account(blocks)
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


# -- every resource waits for its API ---------------------------------------------------

# Which API serves a resource type (longest matching prefix wins). A google_* type that
# matches nothing is itself a violation: classify it here when it is first used.
API_OF_TYPE = {
    "google_artifact_registry_": "artifactregistry.googleapis.com",
    "google_cloudbuild_": "cloudbuild.googleapis.com",
    "google_cloudfunctions2_": "cloudfunctions.googleapis.com",
    "google_cloudfunctions_": "cloudfunctions.googleapis.com",
    "google_cloud_run_": "run.googleapis.com",
    "google_cloud_scheduler_": "cloudscheduler.googleapis.com",
    "google_cloud_tasks_": "cloudtasks.googleapis.com",
    # Load balancer, serverless NEGs, Cloud Armor and SSL policies, certificates.
    "google_compute_": "compute.googleapis.com",
    "google_firestore_": "firestore.googleapis.com",
    "google_logging_": "logging.googleapis.com",
    "google_monitoring_": "monitoring.googleapis.com",
    "google_project_iam_": "cloudresourcemanager.googleapis.com",
    "google_secret_manager_": "secretmanager.googleapis.com",
    "google_service_account": "iam.googleapis.com",  # accounts and their IAM
    "google_storage_": "storage.googleapis.com",
}
# The identity of a service exists once that service is enabled: its API is its `service`.
SERVICE_IDENTITY_TYPE = "google_project_service_identity"
ENABLING_TYPE = "google_project_service"
# Enabled by hand before the first `terraform apply` (docs/runbooks/first-deploy.md,
# "gcloud services enable ..."): Terraform itself needs them to enable the others.
BOOTSTRAP_APIS = frozenset({"cloudresourcemanager.googleapis.com", "serviceusage.googleapis.com"})

_API = re.compile(r"\b[a-z0-9-]+\.googleapis\.com\b")
_REFERENCE = re.compile(
    r"\b(?:(?P<scope>module|local|var)\.(?P<scoped>[A-Za-z0-9_-]+)"
    r"|(?P<type>google_[a-z0-9_]+)\.(?P<name>[A-Za-z0-9_-]+)"
    r"(?:\[\"(?P<key>[^\"]+)\"\])?)"
)

Address = tuple[Path, str]  # (module directory, "type.name" | "module.name" | "local.name")


def api_of(block: Block) -> str | None:
    """The API a resource belongs to; None for a type nobody classified yet."""
    resource_type = block.labels[0]
    if resource_type == SERVICE_IDENTITY_TYPE:
        service = block.body.get("service")
        return service if isinstance(service, str) and _API.fullmatch(service) else None
    matches = [prefix for prefix in API_OF_TYPE if resource_type.startswith(prefix)]
    return API_OF_TYPE[max(matches, key=len)] if matches else None


class _Ordering:
    """Which API enablements Terraform applies before each resource.

    A resource waits for what its `depends_on` names and for everything its arguments
    refer to (resources, module outputs, locals), transitively. Inside a child module,
    a resource also waits for what every call of the module passes to the variables it
    uses, and for the call's `depends_on` (Terraform applies a module's depends_on to
    each of its resources). A module output is taken to wait only for the call's
    `depends_on` (an under-estimate, so a violation is never hidden).
    """

    def __init__(self, blocks: list[Block]) -> None:
        self.resources: dict[Address, Block] = {}
        self.modules: dict[Address, list[Block]] = {}
        self.locals: dict[Address, Any] = {}
        self.calls_of: dict[Path, list[Block]] = {}
        for block in blocks:
            if block.kind in ("resource", "data"):
                prefix = "data." if block.kind == "data" else ""
                self.resources[(block.directory, prefix + ".".join(block.labels))] = block
            elif block.kind == "module":
                address = (block.directory, f"module.{block.labels[0]}")
                self.modules.setdefault(address, []).append(block)
                source = block.body.get("source")
                if isinstance(source, str) and source.startswith("."):
                    child = (block.directory / source).resolve()
                    self.calls_of.setdefault(child, []).append(block)
            elif block.kind == "locals":
                for name, value in block.body.items():
                    self.locals[(block.directory, f"local.{name}")] = value
        self.enabled: dict[Address, frozenset[str]] = {
            address: self._enabled_by(block)
            for address, block in self.resources.items()
            if block.labels[0] == ENABLING_TYPE
        }
        # address -> (APIs waited for, variables of its module it uses)
        self._memo: dict[Address, tuple[frozenset[str], frozenset[str]]] = {}

    def _enabled_by(self, block: Block) -> frozenset[str]:
        service = block.body.get("service")
        if isinstance(service, str) and _API.fullmatch(service):
            return frozenset({service})
        each = str(block.body.get("for_each", ""))
        found = set(_API.findall(each))
        for match in _REFERENCE.finditer(each):
            if match["scope"] == "local":
                found.update(_API.findall(str(self.locals.get((block.directory, match[0])))))
        return frozenset(found)

    def all_enabled(self) -> frozenset[str]:
        return frozenset().union(*self.enabled.values()) if self.enabled else frozenset()

    def _refs(self, directory: Path, value: Any) -> tuple[frozenset[str], frozenset[str]]:
        apis: set[str] = set()
        variables: set[str] = set()
        for _, leaf in _walk(value):
            if not isinstance(leaf, str):
                continue
            for match in _REFERENCE.finditer(leaf):
                if match["scope"] == "var":
                    variables.add(match["scoped"])
                    continue
                if match["scope"] == "module":
                    address = (directory, f"module.{match['scoped']}")
                elif match["scope"] == "local":
                    address = (directory, f"local.{match['scoped']}")
                else:
                    address = (directory, f"{match['type']}.{match['name']}")
                    if address in self.enabled:
                        enabled = self.enabled[address]
                        apis |= {match["key"]} & enabled if match["key"] else enabled
                        continue
                found, used = self._resolve(address)
                apis |= found
                variables |= used
        return frozenset(apis), frozenset(variables)

    def _through_calls(self, directory: Path, variables: frozenset[str]) -> frozenset[str]:
        """What every call of the module at `directory` makes these variables wait for."""
        calls = self.calls_of.get(directory, [])
        if not calls:
            return frozenset()
        waits = []
        for call in calls:
            passed = [call.body.get("depends_on")] + [call.body.get(v) for v in sorted(variables)]
            waits.append(self._refs(call.directory, passed)[0])
        return frozenset.intersection(*waits)

    def _resolve(self, address: Address) -> tuple[frozenset[str], frozenset[str]]:
        if address in self._memo:
            return self._memo[address]
        self._memo[address] = (frozenset(), frozenset())  # a reference cycle adds nothing
        directory = address[0]
        result: tuple[frozenset[str], frozenset[str]] = (frozenset(), frozenset())
        if address in self.resources:
            apis, variables = self._refs(directory, self.resources[address].body)
            result = (apis | self._through_calls(directory, variables), frozenset())
        elif address in self.locals:
            result = self._refs(directory, self.locals[address])
        elif address in self.modules:
            calls = self.modules[address]
            result = (
                frozenset.intersection(
                    *(self._refs(directory, call.body.get("depends_on"))[0] for call in calls)
                ),
                frozenset(),
            )
        self._memo[address] = result
        return result

    def after(self, address: Address) -> frozenset[str]:
        return self._resolve(address)[0]


def _check_api_dependencies(blocks: list[Block], root: Path) -> list[Violation]:
    ordering = _Ordering(blocks)
    enabled = ordering.all_enabled()
    violations = []
    for address, block in sorted(ordering.resources.items(), key=lambda item: str(item[0])):
        resource_type = block.labels[0]
        if block.kind != "resource" or not resource_type.startswith("google_"):
            continue
        if resource_type == ENABLING_TYPE:
            continue
        api = api_of(block)
        if api is None:
            violations.append(
                Violation(
                    "api-enabled-first",
                    block.where,
                    f"{resource_type} is not mapped to its API in tf_invariants.API_OF_TYPE",
                )
            )
        elif api in BOOTSTRAP_APIS:
            continue
        elif api not in enabled:
            violations.append(
                Violation(
                    "api-enabled-first",
                    block.where,
                    f"{api} is not enabled by any google_project_service (apis.tf)",
                )
            )
        elif api not in ordering.after(address):
            violations.append(
                Violation(
                    "api-enabled-first",
                    block.where,
                    f"does not depend on the enablement of {api}: add "
                    "`depends_on = [google_project_service.enabled]` (or refer to a resource "
                    "that does), or a first apply on a fresh project races the API",
                )
            )
    return violations


# -- the functions' build identity ------------------------------------------------------

# What the build service account of the functions must hold. Google's "custom service
# account for Cloud Build" guides list Logs Writer (build logs), Artifact Registry Writer
# (the built image) and Storage Object Viewer (reading the function source):
# https://cloud.google.com/functions/1stgendocs/securing/build-custom-sa and
# https://cloud.google.com/run/docs/configuring/services/build-service-account. A 2nd gen
# function's build fetches the source from the gcf-v2-sources-<number>-<region> bucket
# Cloud Functions stages it in, so that read is granted there (a project grant with a
# condition on the bucket name: the bucket is created by Google on the first deploy).
BUILD_PROJECT_ROLES = ("roles/logging.logWriter", "roles/artifactregistry.writer")
BUILD_SOURCE_ROLE = "roles/storage.objectViewer"
STAGED_SOURCE_BUCKET_PREFIX = "gcf-v2-sources-"
_BUILD_ACCOUNT = re.compile(
    r"^\$\{google_service_account\.(?P<name>[A-Za-z0-9_-]+)\.(?:id|name)\}$"
)


def _check_build_service_account(blocks: list[Block]) -> list[Violation]:
    function_calls = [
        b
        for b in blocks
        if b.kind == "module" and str(b.body.get("source", "")).rstrip("/").endswith("/function")
    ]
    violations = []
    accounts: set[tuple[Path, str]] = set()
    for call in function_calls:
        match = _BUILD_ACCOUNT.match(str(call.body.get("build_service_account_id", "")))
        if match is None:
            violations.append(
                Violation(
                    "build-service-account",
                    call.where,
                    "build_service_account_id must be a google_service_account of this module "
                    "(never the default compute or Cloud Build account)",
                )
            )
            continue
        accounts.add((call.directory, match["name"]))
    for directory, name in sorted(accounts):
        member = f"google_service_account.{name}.email"
        grants = [
            b
            for b in blocks
            if b.kind == "resource"
            and b.directory == directory
            and b.labels[0].endswith("_iam_member")
            and member in str(b.body.get("member", ""))
        ]
        project_roles: set[str] = set()
        staged_source_readable = False
        for grant in grants:
            roles = _granted_roles(grant)
            if grant.labels[0] == "google_project_iam_member":
                condition = _first(grant.body.get("condition"))
                if condition:
                    expression = str(condition.get("expression", ""))
                    if BUILD_SOURCE_ROLE in roles and (
                        f"projects/_/buckets/{STAGED_SOURCE_BUCKET_PREFIX}" in expression
                    ):
                        staged_source_readable = True
                else:
                    project_roles |= roles
        staged_source_readable |= BUILD_SOURCE_ROLE in project_roles
        where = f"{directory.name}: google_service_account.{name}"
        for call in function_calls:
            waits_for = str(call.body.get("depends_on", ""))
            for grant in grants:
                if f"{grant.labels[0]}.{grant.labels[1]}" not in waits_for:
                    violations.append(
                        Violation(
                            "build-service-account",
                            call.where,
                            f"does not depend on {grant.labels[0]}.{grant.labels[1]}: the "
                            "first build may start before its build identity may run it",
                        )
                    )
        for role in BUILD_PROJECT_ROLES:
            if role not in project_roles:
                violations.append(
                    Violation("build-service-account", where, f"lacks {role} on the project")
                )
        if not staged_source_readable:
            violations.append(
                Violation(
                    "build-service-account",
                    where,
                    f"lacks {BUILD_SOURCE_ROLE} on the {STAGED_SOURCE_BUCKET_PREFIX}* buckets "
                    "the build fetches the function source from",
                )
            )
    return violations


def _granted_roles(grant: Block) -> set[str]:
    role = str(grant.body.get("role", ""))
    if role.startswith("roles/"):
        return {role}
    # role = each.value over a literal set of roles
    return set(re.findall(r"roles/[A-Za-z0-9_.]+", str(grant.body.get("for_each", ""))))


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
