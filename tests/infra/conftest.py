"""Fixtures of the infrastructure tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from infra_helpers import TERRAFORM_ROOT


@pytest.fixture
def terraform_copy(tmp_path: Path) -> Path:
    """A scratch copy of infra/terraform to seed violations into."""
    copy = tmp_path / "terraform"
    shutil.copytree(TERRAFORM_ROOT, copy, ignore=shutil.ignore_patterns(".terraform"))
    return copy
