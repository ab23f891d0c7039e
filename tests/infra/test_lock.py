"""The functions' dependencies are locked with hashes, the lock is current, and it is
enough: installed alone (`--require-hashes --no-deps`) into a fresh virtualenv, exactly
as Cloud Build's pip installs the bundle's requirements.txt, it serves every function."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from infra_helpers import REPO_ROOT, replace_once

from infra import bundle, lock

LOCK_TEXT = (REPO_ROOT / lock.LOCK).read_text(encoding="utf-8")
LOCKED = lock.parse_lock(LOCK_TEXT)


def _repo_copy(root: Path) -> Path:
    """requirements.txt, the lock and the runtime variable, to seed violations into."""
    for relative in (lock.REQUIREMENTS, lock.LOCK, str(lock.RUNTIME_VARIABLES)):
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / relative, target)
    return root


# -- the lock matches requirements.txt and the runtime --------------------------------


def test_the_lock_is_current_for_requirements_txt_and_the_terraform_runtime() -> None:
    assert lock.lock_problems(REPO_ROOT) == []


def test_every_top_level_requirement_is_locked_at_its_version() -> None:
    wanted = lock.top_level_pins((REPO_ROOT / lock.REQUIREMENTS).read_text(encoding="utf-8"))
    assert wanted
    assert {name: LOCKED[name].version for name in wanted} == wanted


def test_the_lock_pins_the_packages_that_used_to_float() -> None:
    # The Firestore transaction runner uses private parts of google-cloud-firestore, which
    # sit on these; they must not move between two builds of the same tree.
    for name in ("protobuf", "proto-plus", "google-api-core", "grpcio", "google-auth"):
        assert name in LOCKED, name
        assert LOCKED[name].hashes, name


def test_cli_only_packages_are_neither_required_nor_locked() -> None:
    requirements = (REPO_ROOT / lock.REQUIREMENTS).read_text(encoding="utf-8")
    for name in ("typer", "rich"):
        assert name not in lock.top_level_pins(requirements)
        assert name not in LOCKED


def test_a_version_bump_that_was_not_relocked_is_caught(tmp_path: Path) -> None:
    repo = _repo_copy(tmp_path)
    version = LOCKED["stripe"].version
    replace_once(repo / lock.REQUIREMENTS, f"stripe=={version}", "stripe==0.0.1")

    problems = lock.lock_problems(repo)

    assert any("made from another requirements.txt" in p for p in problems), problems
    assert f"stripe: requirements.txt wants 0.0.1, requirements-lock.txt has {version}" in (
        problems
    )


def test_a_new_requirement_that_was_not_relocked_is_caught(tmp_path: Path) -> None:
    repo = _repo_copy(tmp_path)
    with (repo / lock.REQUIREMENTS).open("a", encoding="utf-8") as handle:
        handle.write("typer==0.29.2\n")

    problems = lock.lock_problems(repo)

    assert "typer is in requirements.txt but not in requirements-lock.txt" in problems


def test_an_unpinned_top_level_requirement_is_refused(tmp_path: Path) -> None:
    repo = _repo_copy(tmp_path)
    with (repo / lock.REQUIREMENTS).open("a", encoding="utf-8") as handle:
        handle.write("httpx>=0.28\n")

    assert lock.lock_problems(repo) == [
        "requirements.txt: 'httpx>=0.28' is not pinned as name==version"
    ]


def test_a_locked_package_without_hashes_is_caught(tmp_path: Path) -> None:
    repo = _repo_copy(tmp_path)
    pin = LOCKED["protobuf"]
    lock_path = repo / lock.LOCK
    text = lock_path.read_text(encoding="utf-8")
    for digest in pin.hashes:
        text = text.replace(f" \\\n    --hash=sha256:{digest}", "")
    lock_path.write_text(text, encoding="utf-8")

    assert lock.lock_problems(repo) == [f"protobuf=={pin.version} has no --hash in {lock.LOCK}"]


def test_a_runtime_change_in_terraform_asks_for_a_new_lock(tmp_path: Path) -> None:
    repo = _repo_copy(tmp_path)
    replace_once(repo / lock.RUNTIME_VARIABLES, '"python311"', '"python312"')

    assert lock.lock_problems(repo) == [
        "requirements-lock.txt was not resolved for Python 3.12 (the Terraform runtime)"
    ]


def test_comments_and_order_in_requirements_txt_do_not_stale_the_lock(tmp_path: Path) -> None:
    repo = _repo_copy(tmp_path)
    path = repo / lock.REQUIREMENTS
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("# reordered\n" + "\n".join(reversed(lines)) + "\n", encoding="utf-8")

    assert lock.lock_problems(repo) == []


def test_the_constraints_view_pins_the_same_versions_without_hashes() -> None:
    text = lock.constraints(REPO_ROOT)

    assert "--hash" not in text
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert sorted(lines) == sorted(f"{p.name}=={p.version}" for p in LOCKED.values())


# -- the development environment runs what production runs ----------------------------


def test_the_test_environment_has_exactly_the_locked_versions() -> None:
    installed = {name: importlib.metadata.version(name) for name in LOCKED if _is_installed(name)}
    assert installed == {name: pin.version for name, pin in LOCKED.items()}


def _is_installed(name: str) -> bool:
    try:
        importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def test_no_dev_requirement_repins_a_locked_package() -> None:
    dev = (REPO_ROOT / "requirements-dev.txt").read_text(encoding="utf-8")
    dev_pins = lock.top_level_pins(
        "\n".join(line for line in dev.splitlines() if not line.startswith("-"))
    )
    assert set(dev_pins) & set(LOCKED) == set()


# -- the lock alone serves every function ----------------------------------------------

# Run by the fresh virtualenv's Python inside the unpacked bundle: main and every module
# of the bundle import; every import statement, also the lazy ones inside functions,
# resolves; functions-framework builds an app for every entry point; the CLI's packages
# are absent.
_PROBE = """
import ast, importlib, importlib.util, json, pkgutil, sys
from pathlib import Path
import functions_framework
import main, commerce
report = {"main": main.__file__, "failed_imports": {}, "unresolved": [], "apps": {}}
for info in pkgutil.walk_packages(commerce.__path__, "commerce."):
    try:
        importlib.import_module(info.name)
    except Exception as exc:
        report["failed_imports"][info.name] = repr(exc)
for path in [Path("main.py"), *sorted(Path("commerce").rglob("*.py"))]:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            try:
                found = name in sys.modules or importlib.util.find_spec(name) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                report["unresolved"].append(f"{path}: {name}")
for name in sys.argv[1:]:
    try:
        functions_framework.create_app(target=name, source=main.__file__)
        report["apps"][name] = "ok"
    except Exception as exc:
        report["apps"][name] = repr(exc)
report["cli_packages"] = [n for n in ("typer", "rich") if importlib.util.find_spec(n)]
print(json.dumps(report))
"""


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    # The test environment's pip drives the fresh interpreter (`--python`), so the venv
    # holds nothing but what the lock installs.
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="module")
def installed_bundle(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("lock-install")
    archive = root / "bundle.zip"
    bundle.build_bundle(REPO_ROOT, archive)
    unpacked = root / "unpacked"
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(unpacked)
    venv = root / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    python = venv / "bin" / "python"
    # What Cloud Build does with the bundle, hash-checked and with no resolver help.
    completed = _pip(
        "--python", str(python), "install", "--quiet", "--require-hashes", "--no-deps",
        "-r", str(unpacked / "requirements.txt"),
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    return {"python": python, "unpacked": unpacked}


@pytest.mark.slow
def test_the_bundle_ships_the_lock_as_its_requirements(installed_bundle: dict[str, Path]) -> None:
    shipped = (installed_bundle["unpacked"] / "requirements.txt").read_text(encoding="utf-8")
    assert shipped == LOCK_TEXT


@pytest.mark.slow
def test_the_lock_installed_alone_has_every_dependency(installed_bundle: dict[str, Path]) -> None:
    completed = _pip("--python", str(installed_bundle["python"]), "check")

    assert completed.returncode == 0, completed.stdout + completed.stderr


@pytest.mark.slow
def test_every_function_serves_from_the_bundle_on_the_lock_alone(
    installed_bundle: dict[str, Path],
) -> None:
    report = _run_probe(installed_bundle)

    assert report["failed_imports"] == {}
    assert report["unresolved"] == []
    assert report["apps"] == dict.fromkeys(bundle.ENTRY_POINTS, "ok")
    assert report["cli_packages"] == []


def _run_probe(installed: dict[str, Path]) -> dict[str, Any]:
    unpacked = installed["unpacked"]
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV")
    }
    environment["PYTHONDONTWRITEBYTECODE"] = "1"
    completed = subprocess.run(
        [str(installed["python"]), "-c", _PROBE, *bundle.ENTRY_POINTS],
        cwd=unpacked,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    assert Path(report["main"]).resolve().is_relative_to(unpacked.resolve())
    return report


@pytest.mark.slow
def test_the_checks_fail_when_a_transitive_package_is_missing(
    installed_bundle: dict[str, Path],
) -> None:
    # Seeded last (it breaks the shared venv): a lock that forgot proto-plus.
    python = str(installed_bundle["python"])
    assert _pip("--python", python, "uninstall", "--yes", "proto-plus").returncode == 0

    checked = _pip("--python", python, "check")
    report = _run_probe(installed_bundle)

    assert checked.returncode != 0
    assert "proto-plus" in checked.stdout
    assert report["failed_imports"]
    assert any("proto" in problem for problem in report["failed_imports"].values())
