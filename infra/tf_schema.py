"""The Terraform tree checked against the Google provider's own schema, offline.

`terraform validate` needs the provider binaries, which cannot be downloaded here. The
provider's schema, however, ships inside registry packages: the prebuilt CDK bindings
of the google and google-beta providers (PyPI `cdktf-cdktf-provider-google[-beta]`,
`cdktn-provider-google[-beta]`) carry a jsii assembly (`_jsii/*.jsii.tgz`, JSON) that
describes every resource and data source of one provider release: each `...Config`
struct lists the arguments and nested blocks, with an `optional` flag, and the
package.json names the provider release it was generated from.

This module obtains such a package with pip (from the configured index, checked
against a pinned SHA-256), reduces the 100 MB assembly to a compact schema cached
under `.cache/terraform-schema/` (ignored by git; the wheel itself is not kept), and
checks every `resource` and `data` block of every .tf file:

- the resource or data source type exists in the provider the block uses
  (`provider = google-beta` selects the beta schema);
- every argument and nested block name exists (names come from the Terraform
  Registry anchors in the jsii docs, e.g. `...#time_zone`, not from re-casing the
  camelCase jsii names); nested blocks and `dynamic` blocks are checked recursively;
- every required argument and required nested block is present;
- `provider "google"` / `provider "google-beta"` blocks use only the provider's own
  arguments;
- the schema's provider release satisfies every `required_providers` constraint of
  that provider, and a committed .terraform.lock.hcl pins that very release, so the
  check speaks about the version `terraform init` selects.

What it cannot see: values (types of expressions, enum values), conflicts between
arguments, and behaviour; `terraform plan` on a machine with internet remains the
final word (docs/infrastructure.md).

The first run needs the package index (as `make venv` does) and takes about half a
minute; later runs read the cache (TF_SCHEMA_CACHE overrides its directory).

Usage (from the repository root):
    python infra/tf_schema.py [--provider-version 6.50.0] [infra/terraform]
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2
from hcl2.utils import SerializationOptions

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ROOT = REPO_ROOT / "infra" / "terraform"
CACHE_DIR = Path(os.environ.get("TF_SCHEMA_CACHE", REPO_ROOT / ".cache" / "terraform-schema"))

# Bumped whenever the compact format below changes, so stale caches are rebuilt.
_FORMAT = 2


@dataclass(frozen=True)
class SchemaSource:
    """One registry package that carries the schema of one provider release."""

    provider: str  # Terraform local name / registry type: google, google-beta
    provider_version: str
    package: str
    version: str
    sha256: str  # of the wheel, so the schema is exactly the one reviewed


# Provider releases whose schema packages are known (PyPI name, version, wheel hash).
# `make tf-check` uses the newest release every versions.tf allows (allowed_release);
# the others serve `--provider-version`, e.g. to decide a provider upgrade. To add a
# release: find the cdktn-provider-google[-beta] version whose package.json names it,
# `pip download --no-deps` it once and record the wheel's SHA-256.
SOURCES = (
    SchemaSource(
        "google",
        "6.50.0",
        "cdktf-cdktf-provider-google",
        "16.12.1",
        "88d021c89e1cf2abf2c935716d6548d26fe3da4bed30713d4fa36df1ef137436",
    ),
    SchemaSource(
        "google-beta",
        "6.50.0",
        "cdktf-cdktf-provider-google-beta",
        "16.12.1",
        "6f75be2b8686994fd3074c42f0771df20c928695d88061c265f2cacf74aa5fb1",
    ),
    SchemaSource(
        "google",
        "7.46.1",
        "cdktn-provider-google",
        "20.3.1",
        "562d1a5f4d9850be9f43f53b9c1cbb1899f0ce7c8daaf1e7b51181287e82a380",
    ),
    SchemaSource(
        "google-beta",
        "7.46.1",
        "cdktn-provider-google-beta",
        "20.3.1",
        "3ed56bf0f493c431f447b37e4e0e4267896cef014b69c1ee599854ddd6a4df3e",
    ),
    SchemaSource(
        "google",
        "8.7.0",
        "cdktn-provider-google",
        "21.1.0",
        "157dead5025d5db5abe48e40cc49f0b6a4d8088fd0498eb17ad5a36bca811b2a",
    ),
    SchemaSource(
        "google-beta",
        "8.7.0",
        "cdktn-provider-google-beta",
        "21.1.0",
        "335670a6abb9f779ee113bc07c9402e12431aa877444039080d224599a436e84",
    ),
)

# Meta-arguments Terraform itself handles (not part of any provider schema).
META_ARGUMENTS = frozenset({"count", "for_each", "provider", "depends_on"})
META_BLOCKS = frozenset({"lifecycle", "provisioner", "connection"})

_PARSE_OPTIONS = SerializationOptions(
    strip_string_quotes=True, with_comments=False, explicit_blocks=True
)
_IS_BLOCK = "__is_block__"
_CLASS_LINK = re.compile(
    r"\{@link https://registry\.terraform\.io/providers/[^/]+/(?P<provider>[^/]+)/"
    r"(?P<version>[^/]+)/docs/(?P<kind>resources|data-sources)/\S+ (?P<type>[a-z0-9_]+)\}"
)
_PROVIDER_LINK = re.compile(
    r"\{@link https://registry\.terraform\.io/providers/[^/]+/(?P<provider>[^/]+)/"
    r"(?P<version>[^/]+)/docs (?P<name>[a-z0-9-]+)\}"
)
_ARGUMENT_LINK = re.compile(r"\{@link https://registry\.terraform\.io/\S+#(?P<name>[A-Za-z0-9_]+) ")
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


@dataclass(frozen=True)
class Violation:
    rule: str
    where: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.where}: {self.detail}"


# -- the compact schema ----------------------------------------------------------------
#
# {"provider": "google", "provider_version": "6.50.0", "package": ..., "format": 1,
#  "resources": {type: struct id}, "data_sources": {type: struct id},
#  "structs": {struct id: {"attributes": {name: required},
#                          "blocks": {name: [struct id, required]}}}}


@dataclass(frozen=True)
class ProviderSchema:
    provider: str
    provider_version: str
    package: str
    resources: dict[str, str]
    data_sources: dict[str, str]
    structs: dict[str, dict[str, Any]]
    provider_config: str  # struct of the `provider "google" { ... }` block

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProviderSchema:
        return cls(
            data["provider"],
            data["provider_version"],
            data["package"],
            data["resources"],
            data["data_sources"],
            data["structs"],
            data["provider_config"],
        )


def _snake(name: str) -> str:
    return _CAMEL_BOUNDARY.sub("_", name).lower()


def _terraform_name(prop: dict[str, Any]) -> str:
    docs = prop.get("docs", {})
    match = _ARGUMENT_LINK.search(f"{docs.get('summary', '')} {docs.get('remarks', '')}")
    return match["name"] if match else _snake(str(prop["name"]))


def _struct_in(type_ref: Any, types: dict[str, Any]) -> str | None:
    """The struct (nested block) a jsii type refers to, through lists and unions."""
    if isinstance(type_ref, dict):
        fqn = type_ref.get("fqn")
        if isinstance(fqn, str) and types.get(fqn, {}).get("datatype"):
            return fqn
        for child in type_ref.values():
            found = _struct_in(child, types)
            if found:
                return found
    elif isinstance(type_ref, list):
        for child in type_ref:
            found = _struct_in(child, types)
            if found:
                return found
    return None


def _properties(fqn: str, types: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Own and inherited properties of a struct, within the provider's assembly."""
    struct = types[fqn]
    yield from struct.get("properties", [])
    for parent in struct.get("interfaces", []):
        if parent in types:  # cdktf.TerraformMetaArguments is outside: meta-arguments
            yield from _properties(parent, types)


def compact_schema(assembly: dict[str, Any], source: SchemaSource) -> dict[str, Any]:
    """Reduce a jsii assembly of a cdktf provider package to the compact schema."""
    types: dict[str, Any] = assembly["types"]
    roots: dict[str, dict[str, str]] = {"resources": {}, "data-sources": {}}
    versions = set()
    provider_configs = []
    for fqn, entry in types.items():
        if entry.get("kind") != "class":
            continue
        summary = entry.get("docs", {}).get("summary", "")
        provider = _PROVIDER_LINK.search(summary)
        if provider and provider["name"] == source.provider and f"{fqn}Config" in types:
            versions.add((provider["provider"], provider["version"]))
            provider_configs.append(f"{fqn}Config")
        match = _CLASS_LINK.search(summary)
        if match is None:
            continue
        config = f"{fqn}Config"
        if config not in types:
            raise ValueError(f"{fqn} has no {config} struct in {source.package}")
        versions.add((match["provider"], match["version"]))
        roots[match["kind"]][match["type"]] = config
    expected = {(source.provider, source.provider_version)}
    if versions != expected:
        raise ValueError(f"{source.package} {source.version} describes {versions}, not {expected}")

    if len(provider_configs) != 1:
        raise ValueError(
            f"{source.package}: expected one provider config, found {provider_configs}"
        )
    structs: dict[str, dict[str, Any]] = {}
    pending = [*roots["resources"].values(), *roots["data-sources"].values(), *provider_configs]
    while pending:
        fqn = pending.pop()
        if fqn in structs:
            continue
        attributes: dict[str, bool] = {}
        blocks: dict[str, list[Any]] = {}
        for prop in _properties(fqn, types):
            name = _terraform_name(prop)
            required = not prop.get("optional", False)
            nested = _struct_in(prop["type"], types)
            if nested is None:
                attributes[name] = required
            else:
                blocks[name] = [nested, required]
                pending.append(nested)
        structs[fqn] = {"attributes": attributes, "blocks": blocks}
    return {
        "format": _FORMAT,
        "provider": source.provider,
        "provider_version": source.provider_version,
        "package": f"{source.package}=={source.version}",
        "resources": roots["resources"],
        "data_sources": roots["data-sources"],
        "structs": structs,
        "provider_config": provider_configs[0],
    }


# -- obtaining the package ---------------------------------------------------------------


def _read_assembly(wheel: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(package.json, .jsii assembly) from the wheel's embedded jsii tarball."""
    found: dict[str, dict[str, Any]] = {}
    with zipfile.ZipFile(wheel) as archive:
        names = [n for n in archive.namelist() if n.endswith(".jsii.tgz")]
        if len(names) != 1:
            raise ValueError(f"{wheel.name}: expected one _jsii/*.jsii.tgz, found {names}")
        with archive.open(names[0]) as raw, tarfile.open(fileobj=raw, mode="r|gz") as tar:
            for member in tar:
                if member.name in ("package/package.json", "package/.jsii"):
                    handle = tar.extractfile(member)
                    assert handle is not None
                    found[member.name] = json.load(handle)
                if len(found) == 2:
                    return found["package/package.json"], found["package/.jsii"]
    raise ValueError(f"{wheel.name}: no package.json and .jsii in the jsii tarball")


def _download(source: SchemaSource, directory: Path) -> Path:
    spec = f"{source.package}=={source.version}"
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--quiet",
        "--disable-pip-version-check",
        "--dest",
        str(directory),
        spec,
    ]
    # Fixed arguments (a pinned name and version from SOURCES), no shell.
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    wheels = sorted(directory.glob("*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        raise RuntimeError(f"pip download {spec} failed:\n{result.stderr.strip()}")
    digest = hashlib.sha256(wheels[0].read_bytes()).hexdigest()
    if digest != source.sha256:
        raise RuntimeError(f"{wheels[0].name} has sha256 {digest}, expected {source.sha256}")
    return wheels[0]


def _cache_file(source: SchemaSource) -> Path:
    return CACHE_DIR / f"{source.package}-{source.version}.v{_FORMAT}.json"


def load_schema(source: SchemaSource) -> ProviderSchema:
    """The compact schema of `source`, built (download + reduce, ~30 s) on first use."""
    cached = _cache_file(source)
    if cached.exists():
        data = json.loads(cached.read_text(encoding="utf-8"))
        if data.get("format") == _FORMAT:
            return ProviderSchema.from_json(data)
    with tempfile.TemporaryDirectory(prefix="tf-schema-") as scratch:
        wheel = _download(source, Path(scratch))
        package_json, assembly = _read_assembly(wheel)
    declared = package_json.get("cdktf", {}).get("provider", {})
    expected_name = f"registry.terraform.io/hashicorp/{source.provider}"
    if (declared.get("name"), declared.get("version")) != (expected_name, source.provider_version):
        raise ValueError(f"{source.package} {source.version} was generated from {declared}")
    data = compact_schema(assembly, source)
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps(data, separators=(",", ":"), sort_keys=True), encoding="utf-8")
    partial.replace(cached)  # atomic: a concurrent run never reads half a file
    return ProviderSchema.from_json(data)


# -- version constraints ---------------------------------------------------------------


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.strip().split("."))


def satisfies(version: str, constraint: str) -> bool:
    """Terraform version-constraint semantics for the operators the tree uses."""
    have = _version(version)
    for clause in (c.strip() for c in constraint.split(",") if c.strip()):
        match = re.fullmatch(r"(~>|>=|<=|!=|=|>|<)?\s*([0-9]+(?:\.[0-9]+)*)", clause)
        if match is None:
            raise ValueError(f"unsupported version constraint {clause!r}")
        operator, bound_text = match[1] or "=", match[2]
        bound = _version(bound_text)
        width = max(len(have), len(bound))
        padded_have = have + (0,) * (width - len(have))
        padded_bound = bound + (0,) * (width - len(bound))
        if operator == "~>":
            # ~> 6.20 is >= 6.20, < 7.0; ~> 6.20.1 is >= 6.20.1, < 6.21.0.
            prefix = bound[:-1] if len(bound) > 1 else bound
            upper = (*prefix[:-1], prefix[-1] + 1)
            ok = padded_have >= padded_bound and have[: len(upper)] < upper
        else:
            ok = {
                "=": padded_have == padded_bound,
                "!=": padded_have != padded_bound,
                ">": padded_have > padded_bound,
                ">=": padded_have >= padded_bound,
                "<": padded_have < padded_bound,
                "<=": padded_have <= padded_bound,
            }[operator]
        if not ok:
            return False
    return True


# -- reading the tree --------------------------------------------------------------------


@dataclass(frozen=True)
class TfBlock:
    kind: str  # resource | data
    type: str
    name: str
    body: dict[str, Any]
    file: Path

    @property
    def where(self) -> str:
        prefix = "data." if self.kind == "data" else ""
        return f"{self.file}: {prefix}{self.type}.{self.name}"

    @property
    def provider(self) -> str:
        configured = self.body.get("provider")
        if isinstance(configured, str):
            return configured.removeprefix("${").removesuffix("}").split(".")[0]
        return self.type.split("_", 1)[0]


def _tf_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*.tf")):
        if ".terraform" not in path.parts:
            yield path


def _parse(path: Path) -> dict[str, Any]:
    return _parse_text(path.read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=256)
def _parse_text(text: str) -> dict[str, Any]:
    # Parsing is the slow part; identical files (tests check many copies) parse once.
    # Callers only read the result.
    parsed: dict[str, Any] = hcl2.loads(text, serialization_options=_PARSE_OPTIONS)
    return parsed


def provider_blocks(root: Path) -> Iterator[TfBlock]:
    for path in _tf_files(root):
        parsed = _parse(path)
        for kind in ("resource", "data"):
            for entry in parsed.get(kind, []):
                for type_name, named in entry.items():
                    if type_name == _IS_BLOCK:
                        continue
                    for name, body in named.items():
                        if name != _IS_BLOCK:
                            yield TfBlock(kind, type_name, name, body, path.relative_to(root))


def provider_configurations(root: Path) -> Iterator[tuple[Path, str, dict[str, Any]]]:
    """(file, provider local name, body) of every `provider` block."""
    for path in _tf_files(root):
        for entry in _parse(path).get("provider", []):
            for name, body in entry.items():
                if name != _IS_BLOCK and isinstance(body, dict):
                    yield path.relative_to(root), name, body


def version_constraints(root: Path) -> Iterator[tuple[Path, str, str, str]]:
    """(file, provider local name, source, version constraint) of required_providers."""
    for path in _tf_files(root):
        for terraform in _parse(path).get("terraform", []):
            for providers in terraform.get("required_providers", []):
                for name, spec in providers.items():
                    if name == _IS_BLOCK or not isinstance(spec, dict):
                        continue
                    yield (
                        path.relative_to(root),
                        name,
                        str(spec.get("source", "")),
                        str(spec.get("version", "")),
                    )


# -- the check -----------------------------------------------------------------------------


def _is_block(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)  # `x = []` is an (empty) attribute, not a block
        and all(isinstance(item, dict) and item.get(_IS_BLOCK) for item in value)
    )


def _check_body(
    body: dict[str, Any], struct_id: str, schema: ProviderSchema, where: str, path: str
) -> Iterator[Violation]:
    struct = schema.structs[struct_id]
    attributes: dict[str, bool] = struct["attributes"]
    blocks: dict[str, list[Any]] = struct["blocks"]
    present: set[str] = set()
    for key, value in body.items():
        if key == _IS_BLOCK or (not path and (key in META_ARGUMENTS or key in META_BLOCKS)):
            continue  # meta-arguments exist only at the top level of a block
        here = f"{path}{key}"
        if key == "dynamic" and isinstance(value, list):
            for dynamic in value:
                for label, generator in dynamic.items():
                    if label == _IS_BLOCK or not isinstance(generator, dict):
                        continue
                    if label not in blocks:
                        yield _unknown(schema, where, f"{path}{label}", "block", struct)
                        continue
                    present.add(label)
                    for content in generator.get("content", []):
                        yield from _check_body(
                            content, blocks[label][0], schema, where, f"{path}{label}."
                        )
            continue
        if _is_block(value):
            if key not in blocks:
                yield _unknown(schema, where, here, "block", struct)
                continue
            present.add(key)
            for item in value:
                yield from _check_body(item, blocks[key][0], schema, where, f"{here}.")
        elif key in attributes or key in blocks:
            # A struct-typed argument may be written as an object attribute
            # (`name = {...}`) by framework-based resources; its name is what matters.
            present.add(key)
        else:
            yield _unknown(schema, where, here, "argument", struct)
    for name, required in sorted(attributes.items()):
        if required and name not in present:
            yield Violation(
                "provider-schema",
                where,
                f"required argument {path}{name} is missing "
                f"({schema.provider} provider {schema.provider_version})",
            )
    for name, (_, required) in sorted(blocks.items()):
        if required and name not in present:
            yield Violation(
                "provider-schema",
                where,
                f"required block {path}{name} is missing "
                f"({schema.provider} provider {schema.provider_version})",
            )


def _unknown(
    schema: ProviderSchema, where: str, name: str, what: str, struct: dict[str, Any]
) -> Violation:
    known = sorted([*struct["attributes"], *struct["blocks"]])
    return Violation(
        "provider-schema",
        where,
        f"unknown {what} {name!r} in the {schema.provider} provider "
        f"{schema.provider_version} (known here: {', '.join(known)})",
    )


def check_against(root: Path, schemas: dict[str, ProviderSchema]) -> list[Violation]:
    """Violations of the tree under `root` against the given provider schemas."""
    root = Path(root)
    violations: list[Violation] = []
    for file, name, source, constraint in version_constraints(root):
        schema = schemas.get(name)
        if schema is None or source != f"hashicorp/{name}":
            violations.append(
                Violation(
                    "provider-schema",
                    str(file),
                    f"required provider {name} ({source}) has no schema to check against",
                )
            )
            continue
        if not constraint or not satisfies(schema.provider_version, constraint):
            violations.append(
                Violation(
                    "provider-schema",
                    str(file),
                    f"{name} version {constraint!r} does not allow {schema.provider_version}, "
                    "the release the configuration is checked against",
                )
            )
    violations += _check_lock_files(root, schemas)
    for file, name, body in provider_configurations(root):
        schema = schemas.get(name)
        where = f"{file}: provider {name}"
        if schema is None:
            violations.append(Violation("provider-schema", where, "no schema for this provider"))
            continue
        violations += _check_body(body, schema.provider_config, schema, where, "")
    for block in provider_blocks(root):
        schema = schemas.get(block.provider)
        if schema is None:
            violations.append(
                Violation(
                    "provider-schema", block.where, f"no schema for provider {block.provider!r}"
                )
            )
            continue
        table = schema.resources if block.kind == "resource" else schema.data_sources
        struct_id = table.get(block.type)
        if struct_id is None:
            violations.append(
                Violation(
                    "provider-schema",
                    block.where,
                    f"{block.kind} type {block.type} does not exist in the {schema.provider} "
                    f"provider {schema.provider_version}",
                )
            )
            continue
        violations += _check_body(block.body, struct_id, schema, block.where, "")
    return violations


def _check_lock_files(root: Path, schemas: dict[str, ProviderSchema]) -> list[Violation]:
    """A committed .terraform.lock.hcl must pin the release the schema check used."""
    violations = []
    for lock in sorted(root.rglob(".terraform.lock.hcl")):
        if ".terraform" in lock.relative_to(root).parts[:-1]:
            continue
        parsed = hcl2.loads(lock.read_text(encoding="utf-8"), serialization_options=_PARSE_OPTIONS)
        for entry in parsed.get("provider", []):
            for address, body in entry.items():
                name = str(address).rsplit("/", 1)[-1]
                schema = schemas.get(name)
                if address == _IS_BLOCK or schema is None:
                    continue
                if body.get("version") != schema.provider_version:
                    violations.append(
                        Violation(
                            "provider-schema",
                            str(lock.relative_to(root)),
                            f"locks {name} {body.get('version')}, but the schema check uses "
                            f"{schema.provider_version}: list that release in SOURCES",
                        )
                    )
    return violations


def releases() -> list[str]:
    """Provider releases with a listed schema package, newest first."""
    return sorted({s.provider_version for s in SOURCES}, key=_version, reverse=True)


def allowed_release(root: Path = DEFAULT_ROOT) -> str:
    """The newest listed release every `required_providers` constraint allows.

    That is the release `terraform init` selects when no lock file pins another (and
    the one a committed lock file must pin, see `_check_lock_files`).
    """
    constraints = [(name, c) for _, name, _, c in version_constraints(root) if c]
    for release in releases():
        if all(satisfies(release, constraint) for _, constraint in constraints):
            return release
    raise ValueError(f"no listed provider release satisfies {constraints}; add one to SOURCES")


def schemas_for(provider_version: str) -> dict[str, ProviderSchema]:
    """The google and google-beta schemas of one provider release."""
    chosen = {s.provider: s for s in SOURCES if s.provider_version == provider_version}
    if not chosen:
        raise ValueError(f"no schema package is listed for provider version {provider_version}")
    return {name: load_schema(source) for name, source in sorted(chosen.items())}


def check_terraform(
    root: Path = DEFAULT_ROOT, provider_version: str | None = None
) -> list[Violation]:
    """Violations of the tree against the release versions.tf allows (or the one given)."""
    release = provider_version or allowed_release(root)
    return check_against(root, schemas_for(release))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", type=Path, default=DEFAULT_ROOT)
    parser.add_argument(
        "--provider-version",
        help="check against another release listed in SOURCES (e.g. before an upgrade)",
    )
    args = parser.parse_args(argv)
    schemas = schemas_for(args.provider_version or allowed_release(args.root))
    violations = check_against(args.root, schemas)
    for violation in violations:
        print(violation, file=sys.stderr)
    described = ", ".join(f"{s.provider} {s.provider_version}" for s in schemas.values())
    print(f"{len(violations)} provider-schema violation(s) under {args.root} ({described})")
    return 1 if violations else 0


if __name__ == "__main__":
    raise SystemExit(main())
