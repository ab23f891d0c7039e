import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commerce.domain import license_keys as lk
from commerce.errors import InvalidLicenseKey

KEY_SHAPE = re.compile(r"^GENX-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$")
data_chars = st.text(alphabet=lk.ALPHABET, min_size=lk.DATA_LENGTH, max_size=lk.DATA_LENGTH)
keys = data_chars.map(lambda data: lk.format_key(data + lk.check_character(data)))
secrets_ = st.binary(min_size=16, max_size=64)


def body_of(key: str) -> str:
    return key.replace("-", "")[len("GENX") :]


def test_generated_key_has_the_documented_shape():
    for _ in range(200):
        key = lk.generate_key()
        assert KEY_SHAPE.match(key), key
        assert lk.normalize_key(key) == key


def test_alphabet_has_no_look_alike_characters():
    assert len(lk.ALPHABET) == 32
    assert not set("ILOU") & set(lk.ALPHABET)


@given(keys)
def test_every_key_with_its_check_character_validates(key):
    assert lk.is_valid_body(body_of(key))
    assert lk.normalize_key(key) == key


@given(keys, st.integers(min_value=0, max_value=lk.BODY_LENGTH - 1), st.sampled_from(lk.ALPHABET))
def test_every_single_character_typo_is_rejected(key, position, replacement):
    body = body_of(key)
    if body[position] == replacement:
        return
    typo = body[:position] + replacement + body[position + 1 :]
    assert not lk.is_valid_body(typo)
    with pytest.raises(InvalidLicenseKey):
        lk.normalize_key(lk.format_key(typo))


@given(keys, st.integers(min_value=0, max_value=lk.BODY_LENGTH - 2))
def test_every_adjacent_swap_is_rejected(key, position):
    body = body_of(key)
    if body[position] == body[position + 1]:
        return
    swapped = body[:position] + body[position + 1] + body[position] + body[position + 2 :]
    assert not lk.is_valid_body(swapped)


def test_all_single_typos_and_swaps_exhaustively_for_sampled_keys():
    # Exhaustive over positions and replacements, for a fixed sample of keys.
    for _ in range(50):
        body = body_of(lk.generate_key())
        for i in range(lk.BODY_LENGTH):
            for char in lk.ALPHABET:
                if char != body[i]:
                    assert not lk.is_valid_body(body[:i] + char + body[i + 1 :])
            if i + 1 < lk.BODY_LENGTH and body[i] != body[i + 1]:
                assert not lk.is_valid_body(body[:i] + body[i + 1] + body[i] + body[i + 2 :])


def _confuse(body: str, choices: list[int]) -> str:
    swaps = {"0": ["O", "o"], "1": ["I", "i", "L", "l"]}
    out = []
    for char, choice in zip(body, choices, strict=True):
        options = swaps.get(char)
        out.append(options[choice % len(options)] if options and choice % 3 else char)
    return "".join(out)


@given(
    keys,
    st.lists(st.integers(0, 11), min_size=lk.BODY_LENGTH, max_size=lk.BODY_LENGTH),
    st.booleans(),
    st.sampled_from(["-", " ", "", "--", " - ", "\t", "\u2013"]),
    st.booleans(),
    st.booleans(),
)
def test_every_pasted_variant_normalises_back(key, choices, lower, separator, prefix, padded):
    body = _confuse(body_of(key), choices)
    groups = [body[i : i + 4] for i in range(0, 12, 4)]
    text = separator.join((["GENX"] if prefix else []) + groups)
    if lower:
        text = text.lower()
    if padded:
        text = f"  {text}\n"
    assert lk.normalize_key(text) == key


@pytest.mark.parametrize(
    "garbage",
    ["", "GENX", "GENX-0000-0000-000", "GENX-0000-0000-00000-0", "x" * 200, "GENX-UUUU-UUUU-UUUU"],
)
def test_garbage_is_not_a_key(garbage):
    with pytest.raises(InvalidLicenseKey):
        lk.normalize_key(garbage)


def test_configured_prefix_is_used_and_required_shape_kept():
    key = lk.generate_key("ACME")
    assert key.startswith("ACME-")
    assert lk.normalize_key(key.lower().replace("-", ""), "ACME") == key


@given(secrets_, st.text(min_size=1, max_size=40), st.integers(1, 5))
def test_derived_keys_are_valid_and_reproducible(secret, license_id, generation):
    key = lk.derive_key(secret, license_id, generation)
    assert KEY_SHAPE.match(key)
    assert lk.derive_key(secret, license_id, generation) == key


def test_derivation_depends_on_secret_license_and_generation():
    secret = b"s" * 32
    base = lk.derive_key(secret, "lic_1", 1)
    assert lk.derive_key(secret, "lic_1", 2) != base
    assert lk.derive_key(secret, "lic_2", 1) != base
    assert lk.derive_key(b"t" * 32, "lic_1", 1) != base


def test_keys_are_stored_as_keyed_hashes_compared_in_constant_time():
    pepper = b"p" * 32
    key = lk.generate_key()
    stored = lk.hash_key(key, pepper)
    assert key not in stored
    assert len(stored) == 64
    assert lk.key_matches(key, stored, pepper)
    assert not lk.key_matches(key, stored, b"q" * 32)
    assert lk.hash_key(key, b"q" * 32) != stored


def test_hint_is_the_last_group_only():
    key = "GENX-ABCD-EFGH-JKMN"
    assert lk.key_hint(key) == "JKMN"


def test_key_material_keeps_previous_secrets_for_rederivation():
    old, new = b"o" * 32, b"n" * 32
    before = lk.KeyMaterial.build(b"p" * 32, old)
    key = before.derive("lic_1", 1, before.current_secret_id, "GENX")
    after = lk.KeyMaterial.build(b"p" * 32, new, [old])
    assert after.current_secret_id != before.current_secret_id
    assert after.derive("lic_1", 1, before.current_secret_id, "GENX") == key
    with pytest.raises(LookupError):
        lk.KeyMaterial.build(b"p" * 32, new).derive("lic_1", 1, before.current_secret_id, "GENX")


def test_key_material_refuses_short_secrets():
    with pytest.raises(ValueError, match="16 bytes"):
        lk.KeyMaterial.build(b"short", b"n" * 32)
