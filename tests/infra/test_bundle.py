"""The deploy bundle is reproducible and serves every entry point on its own."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from infra_helpers import REPO_ROOT, load_infra_module

from infra import lock

bundle = load_infra_module("bundle")

MAIN_PY = REPO_ROOT / "functions" / "main.py"
needs_main = pytest.mark.skipif(
    not MAIN_PY.is_file(),
    reason="functions/main.py does not exist yet (entry points are being written)",
)


def _fake_repo(root: Path) -> Path:
    (root / "functions").mkdir(parents=True)
    (root / "functions" / "main.py").write_text("def checkout(request):\n    return 'ok'\n")
    package = root / "shared" / "commerce"
    (package / "domain").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "domain" / "__init__.py").write_text("")
    (package / "domain" / "orders.py").write_text("STATES = ()\n")
    (package / "py.typed").write_text("")
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "orders.cpython-311.pyc").write_bytes(b"\x00cache")
    # Operator CLI modules: never part of the bundle.
    (package / "cli.py").write_text("import typer\n")
    (package / "domain" / "cli.py").write_text("import typer\n")
    (package / "rotation_cli.py").write_text("import typer\n")
    (package / "cli_support.py").write_text("import typer\n")
    _write_lock(root, "functions-framework==3.10.2\n")
    return root


def _write_lock(root: Path, requirements: str) -> None:
    """requirements.txt, a matching (tiny) lock and the runtime Terraform deploys."""
    (root / "requirements.txt").write_text(requirements)
    pins = "".join(f"{line} \\\n    --hash=sha256:{'0' * 64}\n" for line in requirements.split())
    (root / "requirements-lock.txt").write_text(
        f"#   uv pip compile requirements.txt --python-version 3.11\n"
        f"{lock.DIGEST_PREFIX}{lock.input_digest(requirements)}\n{pins}"
    )
    variables = root / lock.RUNTIME_VARIABLES
    variables.parent.mkdir(parents=True, exist_ok=True)
    variables.write_text('variable "runtime" {\n  default = "python311"\n}\n')


def test_two_builds_of_the_same_tree_are_byte_identical(tmp_path: Path) -> None:
    repo = _fake_repo(tmp_path / "repo")
    first = bundle.build_bundle(repo, tmp_path / "one.zip")
    # Different mtimes on disk must not leak into the archive.
    for path in repo.rglob("*"):
        os.utime(path, (1_000_000_000, 1_000_000_000))
    second = bundle.build_bundle(repo, tmp_path / "two.zip")

    assert first == second
    assert hashlib.sha256((tmp_path / "two.zip").read_bytes()).hexdigest() == second


def test_a_changed_source_file_changes_the_hash(tmp_path: Path) -> None:
    repo = _fake_repo(tmp_path / "repo")
    before = bundle.build_bundle(repo, tmp_path / "a.zip")
    (repo / "shared" / "commerce" / "domain" / "orders.py").write_text("STATES = ('paid',)\n")

    assert bundle.build_bundle(repo, tmp_path / "b.zip") != before


def test_the_bundle_holds_main_the_package_and_the_lock_only(tmp_path: Path) -> None:
    repo = _fake_repo(tmp_path / "repo")
    bundle.build_bundle(repo, tmp_path / "bundle.zip")

    with zipfile.ZipFile(tmp_path / "bundle.zip") as archive:
        names = archive.namelist()
        infos = archive.infolist()
        shipped = archive.read("requirements.txt")

    assert names == sorted(names)
    assert names == [
        "commerce/__init__.py",
        "commerce/domain/__init__.py",
        "commerce/domain/orders.py",
        "commerce/py.typed",
        "main.py",
        "requirements.txt",
    ]
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
    # Cloud Build's pip reads requirements.txt: it is the hashed lock.
    assert shipped == (repo / "requirements-lock.txt").read_bytes()


def test_a_lock_older_than_requirements_txt_builds_nothing(tmp_path: Path) -> None:
    repo = _fake_repo(tmp_path / "repo")
    (repo / "requirements.txt").write_text("functions-framework==3.10.3\n")

    with pytest.raises(bundle.BundleError, match=r"run `make lock`"):
        bundle.build_bundle(repo, tmp_path / "bundle.zip")
    assert not (tmp_path / "bundle.zip").exists()


def test_a_missing_lock_is_reported_not_zipped(tmp_path: Path) -> None:
    repo = _fake_repo(tmp_path / "repo")
    (repo / "requirements-lock.txt").unlink()

    with pytest.raises(bundle.BundleError, match=r"requirements-lock\.txt does not exist"):
        bundle.build_bundle(repo, tmp_path / "bundle.zip")


def test_a_missing_main_py_is_reported_not_zipped(tmp_path: Path) -> None:
    repo = _fake_repo(tmp_path / "repo")
    (repo / "functions" / "main.py").unlink()

    with pytest.raises(bundle.BundleError, match=r"functions/main\.py"):
        bundle.build_bundle(repo, tmp_path / "bundle.zip")
    assert not (tmp_path / "bundle.zip").exists()


@needs_main
def test_the_real_tree_builds_identically_twice(tmp_path: Path) -> None:
    first = bundle.build_bundle(REPO_ROOT, tmp_path / "one.zip")
    second = bundle.build_bundle(REPO_ROOT, tmp_path / "two.zip")
    assert first == second


# Run inside the unpacked bundle with nothing of the repository on the path: main must
# import, each entry point must be a callable, and functions-framework must build an
# app for it (what Cloud Functions does at start-up).
_PROBE = """
import json, sys
import functions_framework
import main, commerce
report = {"main": main.__file__, "commerce": commerce.__file__, "missing": [], "failed": {}}
for name in sys.argv[1:]:
    if not callable(getattr(main, name, None)):
        report["missing"].append(name)
        continue
    try:
        functions_framework.create_app(target=name, source=main.__file__)
    except Exception as exc:
        report["failed"][name] = repr(exc)
print(json.dumps(report))
"""


def _probe(archive: Path, unpacked: Path) -> dict[str, Any]:
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(unpacked)
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")
    }
    environment["PYTHONPATH"] = str(unpacked)
    environment["PYTHONDONTWRITEBYTECODE"] = "1"
    completed = subprocess.run(
        [sys.executable, "-c", _PROBE, *bundle.ENTRY_POINTS],
        cwd=unpacked,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    report: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    # The bundle's own copies were imported, not the repository's editable install.
    assert Path(report["main"]).resolve().is_relative_to(unpacked.resolve())
    assert Path(report["commerce"]).resolve().is_relative_to(unpacked.resolve())
    return report


def _repo_with_stub_main(root: Path, entry_points: tuple[str, ...]) -> Path:
    """The real commerce package and requirements with a stub main.py."""
    shutil.copytree(
        REPO_ROOT / "shared" / "commerce",
        root / "shared" / "commerce",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    for relative in ("requirements.txt", "requirements-lock.txt", str(lock.RUNTIME_VARIABLES)):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / relative, root / relative)
    (root / "functions").mkdir()
    (root / "functions" / "main.py").write_text(
        "import commerce\n\n"
        + "".join(f"def {name}(request):\n    return 'ok'\n\n" for name in entry_points)
    )
    return root


def test_the_probe_accepts_a_bundle_with_every_entry_point(tmp_path: Path) -> None:
    repo = _repo_with_stub_main(tmp_path / "repo", bundle.ENTRY_POINTS)
    bundle.build_bundle(repo, tmp_path / "bundle.zip")

    report = _probe(tmp_path / "bundle.zip", tmp_path / "unpacked")

    assert report["missing"] == []
    assert report["failed"] == {}


def test_the_probe_reports_an_entry_point_missing_from_main(tmp_path: Path) -> None:
    without_reconcile = tuple(name for name in bundle.ENTRY_POINTS if name != "reconcile")
    repo = _repo_with_stub_main(tmp_path / "repo", without_reconcile)
    bundle.build_bundle(repo, tmp_path / "bundle.zip")

    report = _probe(tmp_path / "bundle.zip", tmp_path / "unpacked")

    assert report["missing"] == ["reconcile"]


@needs_main
def test_every_entry_point_serves_from_the_unpacked_real_bundle(tmp_path: Path) -> None:
    bundle.build_bundle(REPO_ROOT, tmp_path / "bundle.zip")

    report = _probe(tmp_path / "bundle.zip", tmp_path / "unpacked")

    assert report["missing"] == []
    assert report["failed"] == {}
