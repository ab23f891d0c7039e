"""Strict, bounded JSON for bytes that come from strangers (request bodies, webhooks).

`loads` is the standard library's parser with its hooks plus a linear pre-scan, so
every way a body can be wrong ends in one `CommerceError` with a stable code (400),
never in `RecursionError`, Python's int-string-limit `ValueError` or a string that
cannot be encoded again:

| what                                                    | code               |
|---------------------------------------------------------|--------------------|
| not UTF-8, or a lone surrogate (`"\\ud800"`)             | `invalid_encoding` |
| arrays/objects nested deeper than `MAX_DEPTH`           | `body_too_deep`    |
| a number literal longer than `MAX_NUMBER_CHARS`, or one | `number_too_long`  |
| that overflows a float (`1e999`)                        |                    |
| anything else: syntax, `NaN`/`Infinity`, a repeated key | `invalid_json`     |

Why not a faster library: orjson has a fixed depth of 1024 and silently turns
integers past 64 bits into floats; msgspec raises `RecursionError` on deep input;
pydantic-core's parser (jiter) refuses the right things but reports them all as one
`ValueError` told apart only by its message, and its limits (depth 200, 4,300 digits)
cannot be set. Bodies here are at most 512 KiB, where the C parser of the standard
library is fast enough.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from commerce.errors import BodyTooDeep, InvalidEncoding, InvalidJson, NumberTooLong

MAX_DEPTH = 32  # our request bodies are flat; Stripe events nest about 6 deep
MAX_NUMBER_CHARS = 40  # int64 has 19 digits; Stripe sends nothing longer

# A string literal, unrolled so it never backtracks; an unterminated one runs to the
# end of the text (the parser refuses it later). Used to blank out strings, so the
# brackets counted below are only those of the structure.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_BRACKETS = str.maketrans("{}", "[]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _parse_int(literal: str) -> int:
    if len(literal) > MAX_NUMBER_CHARS:
        raise NumberTooLong()
    return int(literal)


def _parse_float(literal: str) -> float:
    if len(literal) > MAX_NUMBER_CHARS:
        raise NumberTooLong()
    value = float(literal)
    if not math.isfinite(value):
        raise NumberTooLong("A number in the body is out of range.")
    return value


def _refuse_constant(literal: str) -> Any:
    raise InvalidJson(f"{literal} is not a JSON number.")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise InvalidJson("A key is repeated in a JSON object.")
    return obj


def check_depth(text: str, max_depth: int = MAX_DEPTH) -> None:
    """Raise BodyTooDeep if `text` nests arrays/objects deeper than `max_depth`.

    Linear and iteration-free: with strings blanked and `{}` mapped to `[]`, each pass
    of `replace("[]", "")` removes every innermost pair, so a structure at most
    `max_depth` deep is gone after `max_depth` passes. Leftover brackets with no pair
    in them are unbalanced: invalid JSON, refused here too so the recursive parser
    never sees an unclosed run of `[`.
    """
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text)).translate(_BRACKETS)
    for _ in range(max_depth):
        if not brackets:
            return
        brackets = brackets.replace("[]", "")
    if not brackets:
        return
    if "[]" in brackets:
        raise BodyTooDeep()
    raise InvalidJson("The body is not valid JSON (unbalanced brackets).")


def loads(data: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse `data` as strict JSON within the bounds above (raises CommerceError)."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidEncoding() from None
    else:
        text = data
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidEncoding() from None
    check_depth(text, max_depth)
    try:
        value = json.loads(
            text,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_refuse_constant,
            object_pairs_hook=_object,
        )
    except json.JSONDecodeError as exc:
        raise InvalidJson(f"The body is not valid JSON ({exc.msg}).") from None
    if _SURROGATE_ESCAPE.search(text):
        # `\ud800` escapes decode to lone surrogates, which no UTF-8 encoder (Firestore,
        # logs, our own JSON answers) accepts. Only bodies with such an escape pay this.
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidEncoding("The body contains a lone surrogate escape.") from None
    return value
