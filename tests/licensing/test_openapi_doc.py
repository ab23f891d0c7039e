"""docs/license-api.openapi.yaml names the same paths and status codes as the code.

(No YAML parser is among the project's dependencies, so the checks read the few
structural lines they need; the document is kept in block style for that.)
"""

from __future__ import annotations

import re
from pathlib import Path

from commerce.licensing.endpoints import ROUTES
from commerce.licensing.schemas import StatusCode

DOC = Path(__file__).resolve().parents[2] / "docs" / "license-api.openapi.yaml"
TEXT = DOC.read_text(encoding="utf-8")


def test_the_document_is_openapi_3_1() -> None:
    assert TEXT.startswith("openapi: 3.1.0\n")


def test_the_document_has_exactly_the_routed_paths() -> None:
    paths = re.findall(r"^  (/[a-z]+):$", TEXT, flags=re.MULTILINE)

    assert sorted(paths) == sorted(f"/{name}" for name in ROUTES)


def test_the_status_code_enum_is_the_codes_enum() -> None:
    block = TEXT.split("    StatusCode:\n", 1)[1].split("      enum:\n", 1)[1]
    listed = []
    for line in block.splitlines():
        match = re.fullmatch(r"        - ([A-Z_]+)", line)
        if match is None:
            break
        listed.append(match.group(1))

    assert listed == [code.value for code in StatusCode]


def test_the_signature_headers_are_documented() -> None:
    assert "X-GENX-Signature:" in TEXT
    assert "X-GENX-Key-Id:" in TEXT
