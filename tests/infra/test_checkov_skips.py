"""Every checkov check skipped in infra/terraform carries a written reason.

checkov itself runs through infra/checkov.sh (own virtualenv, offline); this test only
keeps the skips honest without needing that virtualenv.
"""

from __future__ import annotations

import re

from infra_helpers import TERRAFORM_ROOT

INLINE_SKIP = re.compile(r"#\s*checkov:skip=([A-Z0-9_]+)(?::(.*))?")


def test_every_inline_skip_names_a_check_and_a_reason() -> None:
    skips = []
    for path in sorted(TERRAFORM_ROOT.rglob("*.tf")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            match = INLINE_SKIP.search(line)
            if match:
                skips.append((f"{path.name}:{number}", match[1], (match[2] or "").strip()))

    assert skips, "expected the documented skips (public storefront bucket, log sink)"
    unexplained = [where for where, _, reason in skips if len(reason) < 20]
    assert unexplained == []


def test_the_config_file_skips_nothing_without_a_comment() -> None:
    config = (TERRAFORM_ROOT / ".checkov.yaml").read_text(encoding="utf-8").splitlines()
    in_skips = False
    for line in config:
        if line.startswith("skip-check:"):
            in_skips = not line.rstrip().endswith("[]")
            continue
        if in_skips and line.startswith("  - "):
            assert "#" in line, f"skip without a reason: {line}"
        elif in_skips and line and not line.startswith(" "):
            in_skips = False
