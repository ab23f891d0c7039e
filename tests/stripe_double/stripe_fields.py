"""Field names and JSON types of Stripe's objects, from Stripe's published fixtures.

`stripe_fields.json` is generated from `openapi/fixtures3.json` of github.com/stripe/openapi
(the commit is recorded in the file) by running this module with that file's path:

    .venv/bin/python -m tests.stripe_double.stripe_fields /path/to/fixtures3.json COMMIT

Only facts are kept (each resource's field names and the JSON type of each non-null
example value), so the double and the test builders can be held to Stripe's shape
offline (tests/stripe_double/test_stripe_shapes.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

FIELDS_FILE = Path(__file__).with_name("stripe_fields.json")
RESOURCES = (
    "checkout.session",
    "item",
    "price",
    "payment_intent",
    "charge",
    "refund",
    "dispute",
    "radar.early_fraud_warning",
    "event",
)


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def extract(fixtures: dict[str, Any], commit: str) -> dict[str, Any]:
    resources = fixtures["resources"]
    return {
        "source": f"github.com/stripe/openapi@{commit} openapi/fixtures3.json",
        "resources": {
            name: {field: json_type(value) for field, value in sorted(resources[name].items())}
            for name in RESOURCES
        },
    }


def load() -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = json.loads(FIELDS_FILE.read_text())["resources"]
    return found


if __name__ == "__main__":
    source, commit = Path(sys.argv[1]), sys.argv[2]
    FIELDS_FILE.write_text(
        json.dumps(extract(json.loads(source.read_text()), commit), indent=1) + "\n"
    )
    print(f"wrote {FIELDS_FILE}")
