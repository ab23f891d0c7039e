"""The bounded parsers of request bodies: `commerce.strict_json.loads` and
`commerce.http.parse_form`. Every refusal is a CommerceError with a stable 4xx code;
nothing else ever escapes (no RecursionError, no int-string-limit ValueError)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commerce import strict_json
from commerce.errors import CommerceError
from commerce.http import MAX_FORM_FIELDS, parse_form

MAX = strict_json.MAX_DEPTH


def code_of(data: bytes | str) -> str:
    with pytest.raises(CommerceError) as caught:
        strict_json.loads(data)
    assert caught.value.status == 400
    return caught.value.code


def nested(depth: int, *, opener: str = "[", closer: str = "]") -> str:
    return opener * depth + closer * depth


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_any_ordinary_json_value_reads_back_unchanged(value: Any) -> None:
    text = json.dumps(value, ensure_ascii=False)
    assert strict_json.loads(text.encode("utf-8")) == value
    assert strict_json.loads(json.dumps(value)) == value  # \u escapes of pairs too


def refusal(data: bytes | str) -> CommerceError | None:
    try:
        strict_json.loads(data)
    except CommerceError as error:
        return error
    return None


@given(st.binary(max_size=300))
def test_arbitrary_bytes_are_read_or_refused_with_a_400_code(data: bytes) -> None:
    error = refusal(data)
    if error is not None:
        assert error.status == 400
        assert error.code in {
            "invalid_json",
            "invalid_encoding",
            "body_too_deep",
            "number_too_long",
        }


@given(st.text(alphabet='[]{}",:0123456789.e-\\u"ad8 ', max_size=200))
def test_arbitrary_json_like_text_is_read_or_refused_with_a_400_code(text: str) -> None:
    error = refusal(text)
    assert error is None or error.status == 400


def test_nesting_up_to_the_bound_is_read() -> None:
    assert strict_json.loads(nested(MAX)) is not None
    mixed = '{"a":' * (MAX - 1) + "[1]" + "}" * (MAX - 1)
    assert strict_json.loads(mixed) is not None


@pytest.mark.parametrize("depth", [MAX + 1, 1000, 100_000])
def test_deeper_nesting_is_refused_as_too_deep(depth: int) -> None:
    assert code_of(nested(depth)) == "body_too_deep"
    assert code_of(nested(depth, opener='{"a":', closer="}")) == "body_too_deep"


def test_an_unclosed_run_of_brackets_is_invalid_json_without_recursing() -> None:
    assert code_of("[" * 200_000) == "invalid_json"
    assert code_of('{"a":[' * 5) == "invalid_json"


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = json.dumps({"a": "[" * 5000 + '\\"{' * 100, "b": ["]]]}}}"]})
    assert strict_json.loads(text)["b"] == ["]]]}}}"]


@pytest.mark.parametrize(
    "literal",
    ["1" * 41, "1" * 5000, "-" + "9" * 40, "1." + "1" * 40, "1e999", "-1e999", "1" * 100_000],
)
def test_numbers_too_long_or_out_of_range_are_refused(literal: str) -> None:
    assert code_of('{"days": ' + literal + "}") == "number_too_long"


def test_numbers_within_the_bound_are_read_exactly() -> None:
    big = int("9" * strict_json.MAX_NUMBER_CHARS)
    assert strict_json.loads(f'{{"n": {big}, "f": 1.5e300}}') == {"n": big, "f": 1.5e300}


@pytest.mark.parametrize(
    "data",
    [
        b'{"a": "\xff"}',
        b'{"\xed\xa0\x80": 1}',  # a surrogate encoded as UTF-8
        b"\xc3\x28",
        b'{"nonce": "\\ud800"}',
        b'{"nonce": "\\udc00x"}',
        b'["ok", "\\uDBFF"]',
        b'{"\\ud800": 1}',
    ],
)
def test_invalid_utf8_and_lone_surrogates_are_refused_as_invalid_encoding(data: bytes) -> None:
    assert code_of(data) == "invalid_encoding"


def test_a_surrogate_pair_and_an_escaped_backslash_are_fine() -> None:
    assert strict_json.loads(b'["\\ud83d\\ude00", "\\\\ud800"]') == ["\U0001f600", "\\ud800"]


@pytest.mark.parametrize(
    "text", ['{"a": NaN}', "[Infinity]", "[-Infinity]", '{"a": 1, "a": 2}', '{"a": 1} x', ""]
)
def test_non_standard_or_ambiguous_json_is_invalid(text: str) -> None:
    assert code_of(text) == "invalid_json"


# -- forms ------------------------------------------------------------------------------


def test_a_form_gives_its_non_empty_fields_first_value_winning() -> None:
    assert parse_form(b"email=a%40b.de&locale=&ref=x&ref=y&name=J%C3%BCrgen") == {
        "email": "a@b.de",
        "ref": "x",
        "name": "J\u00fcrgen",
    }


@pytest.mark.parametrize(
    "body", [b"email=%ff", b"email=\xff", b"email=%ED%A0%80", b"%C3=1", b"locale=%C3%28"]
)
def test_a_form_that_is_not_utf8_is_refused(body: bytes) -> None:
    with pytest.raises(CommerceError) as caught:
        parse_form(body)
    assert caught.value.code == "invalid_encoding"


def test_a_form_with_too_many_fields_is_refused() -> None:
    with pytest.raises(CommerceError) as caught:
        parse_form("&".join(f"f{n}=1" for n in range(MAX_FORM_FIELDS + 1)).encode())
    assert caught.value.code == "invalid_request"
