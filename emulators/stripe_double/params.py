"""Decoding of Stripe's form encoding and typed access to the decoded values.

The official library sends `application/x-www-form-urlencoded` bodies (and query
strings) with bracketed keys: `metadata[k]=v`, `line_items[0][price]=...`,
`expand[0]=...`; other clients send `expand[]=...`. Values are always strings,
so each field is coerced where it is read, with Stripe's error messages.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import StripeError, invalid_param, missing_param, unknown_param

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_SEGMENT = re.compile(r"\[([^\[\]]*)\]")


def decode_form(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Turn flat bracketed pairs into nested dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        match = _KEY.match(key)
        if match is None:
            raise StripeError(400, f"Invalid parameter name: {key}", param=key)
        segments = [match.group(1), *_SEGMENT.findall(match.group(2))]
        _insert(root, segments, value, key)
    decoded: dict[str, Any] = _listify(root)
    return decoded


def _insert(node: dict[str, Any], segments: list[str], value: str, key: str) -> None:
    *parents, last = segments
    for segment in parents:
        name = segment or str(len(node))
        child = node.setdefault(name, {})
        if not isinstance(child, dict):
            raise StripeError(400, f"Invalid parameter: {key} mixes a value and a hash", param=key)
        node = child
    name = last or str(len(node))
    if isinstance(node.get(name), dict):
        raise StripeError(400, f"Invalid parameter: {key} mixes a value and a hash", param=key)
    node[name] = value


def _listify(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    converted = {key: _listify(item) for key, item in value.items()}
    if converted and all(key.isdigit() for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted


def reject_unknown(params: Mapping[str, Any], allowed: Iterable[str], prefix: str = "") -> None:
    known = set(allowed)
    for name in params:
        if name not in known:
            raise unknown_param(f"{prefix}[{name}]" if prefix else name)


def required(params: Mapping[str, Any], name: str) -> Any:
    value = params.get(name)
    if value is None or value == "":
        raise missing_param(name)
    return value


def as_str(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise invalid_param(param, f"Invalid string: {param} must be a string")
    return value


def as_optional_str(value: Any, param: str) -> str | None:
    return None if value is None or value == "" else as_str(value, param)


def as_int(value: Any, param: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        return int(value)
    raise invalid_param(param, f"Invalid integer: {value}")


def as_bool(value: Any, param: str) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return bool(value == "true")
    raise invalid_param(param, f"Invalid boolean: {value}")


def as_dict(value: Any, param: str) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, list):
        return {str(index): item for index, item in enumerate(value)}
    if not isinstance(value, dict):
        raise invalid_param(param, f"Invalid object: {param} must be a hash")
    return value


def as_list(value: Any, param: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, dict):  # `key[]` alone decodes to a one-element list; keep dicts honest
        raise invalid_param(param, f"Invalid array: {param} must be an array")
    if not isinstance(value, list):
        return [value]
    return value


def as_metadata(value: Any, param: str = "metadata") -> dict[str, str]:
    """Metadata as Stripe accepts it: up to 50 string keys (40 chars) and values (500 chars)."""
    if value == "":
        return {}
    entries = as_dict(value, param)
    if len(entries) > 50:
        raise invalid_param(param, "Metadata can have up to 50 keys.")
    for key, item in entries.items():
        if len(key) > 40:
            raise invalid_param(f"{param}[{key}]", "Metadata keys can be up to 40 characters long.")
        if not isinstance(item, str):
            raise invalid_param(f"{param}[{key}]", f"Invalid string: {param}[{key}]")
        if len(item) > 500:
            raise invalid_param(
                f"{param}[{key}]", "Metadata values can be up to 500 characters long."
            )
    return dict(entries)


def merge_metadata(current: dict[str, str], update: Any, param: str = "metadata") -> dict[str, str]:
    """Stripe's update semantics: keys merge, an empty value unsets a key, `""` unsets all."""
    if update == "":
        return {}
    merged = dict(current)
    for key, item in as_metadata(update, param).items():
        if item == "":
            merged.pop(key, None)
        else:
            merged[key] = item
    return merged


def expand_paths(params: Mapping[str, Any]) -> list[str]:
    return [as_str(item, "expand") for item in as_list(params.get("expand"), "expand")]
