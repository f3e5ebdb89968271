"""Canonical JSON, the sealed envelope and the errors that name what went wrong."""

from __future__ import annotations

import json
import math
import random

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from json_strategies import json_ints, json_keys, json_text, json_values, nested

from safepoint.core import codec
from safepoint.errors import CorruptCheckpoint, NotSerializable, SafepointError

KEY = "objects/ab/abcdef"
SETTINGS = settings(max_examples=100, deadline=None)


def typed(value: object) -> object:
    """A form of `value` in which True, 1 and 1.0 (and 0.0, -0.0) all differ, for exact comparisons."""
    if isinstance(value, dict):
        return {"dict": sorted((k, typed(v)) for k, v in value.items())}
    if isinstance(value, list):
        return {"list": [typed(v) for v in value]}
    if isinstance(value, float):
        return {"float": value.hex()}
    return {type(value).__name__: value}


def reordered(value: object, rng: random.Random) -> object:
    """The same value with every dict's keys inserted in a shuffled order."""
    if isinstance(value, dict):
        keys = list(value)
        rng.shuffle(keys)
        return {k: reordered(value[k], rng) for k in keys}
    if isinstance(value, list):
        return [reordered(v, rng) for v in value]
    return value


# --- round trips -------------------------------------------------------------------------------------


@SETTINGS
@given(json_values(), st.booleans())
def test_round_trip_through_dumps_and_the_envelope_is_exact(value: object, compress: bool) -> None:
    payload = codec.dumps(value)
    assert typed(codec.loads(payload)) == typed(value)
    blob = codec.seal(payload, compress=compress)
    assert codec.unseal(blob, KEY) == payload
    assert typed(codec.load_sealed(blob, KEY)) == typed(value)
    assert codec.payload_digest(blob) == codec.sha256(payload)


@SETTINGS
@given(st.lists(json_text, min_size=1, max_size=20))
def test_escaped_json_from_other_writers_decodes(texts: list[str]) -> None:
    # ASCII-only JSON spells astral characters as escaped surrogate pairs and controls as \uXXXX escapes.
    document = json.dumps(texts, ensure_ascii=True).replace("/", "\\/")
    assert codec.loads(document) == texts
    assert codec.loads(document.encode()) == texts
    assert codec.loads(codec.dumps(codec.loads(document))) == texts


def test_astral_and_escaped_characters_survive_sealing() -> None:
    value = {"emoji": "\U0001f600\U0001f9ea", "cjk": "\u6f22\u5b57", "nul": "a\x00b", "bidi": "\u202e", "t": "\t\n"}
    blob = codec.seal(codec.dumps(value), compress=False)
    assert codec.load_sealed(blob, KEY) == value
    assert (
        codec.loads(b'"\\ud83d\\ude00 \\u00e9 \\/ \\" \\\\ \\b\\f\\n\\r\\t"') == '\U0001f600 \u00e9 / " \\ \b\f\n\r\t'
    )


@pytest.mark.parametrize("depth", [1, 50, 100, 120])
def test_deep_nesting_round_trips(depth: int) -> None:
    value = nested(depth, {"leaf": [1, 2.5, "x", None, True]})
    blob = codec.seal(codec.dumps(value))
    assert codec.load_sealed(blob, KEY) == value


def test_large_list_round_trips_and_compresses() -> None:
    value = [{"i": i, "text": f"message number {i}"} for i in range(50_000)]
    payload = codec.dumps(value)
    blob = codec.seal(payload)
    assert blob[3:4] == b"z"
    assert len(blob) < len(payload) / 3
    assert codec.load_sealed(blob, KEY) == value


@pytest.mark.parametrize("number", [0, -1, 2**53 + 1, 2**63 - 1, -(2**63), 2**64 - 1])
def test_integers_within_64_bits_are_exact(number: int) -> None:
    loaded = codec.loads(codec.dumps({"n": number}))["n"]
    assert loaded == number and type(loaded) is int


@pytest.mark.parametrize("number", [0.1, -0.0, 5e-324, 1.7976931348623157e308, 1 / 3, 2.0**60])
def test_floats_are_exact(number: float) -> None:
    loaded = codec.loads(codec.dumps([number]))[0]
    assert type(loaded) is float and loaded.hex() == number.hex()
    assert math.copysign(1, loaded) == math.copysign(1, number)


# --- canonical form ----------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(json_values(), st.randoms(use_true_random=False))
def test_dumps_is_canonical_whatever_the_key_order(value: object, rng: random.Random) -> None:
    assert codec.dumps(reordered(value, rng)) == codec.dumps(value)


@SETTINGS
@given(st.dictionaries(json_keys, json_ints, min_size=2, max_size=20))
def test_keys_are_sorted_and_output_has_no_whitespace(value: dict[str, int]) -> None:
    loaded = orjson.loads(codec.dumps(value))
    assert list(loaded) == sorted(value)
    assert codec.dumps(value) == orjson.dumps(dict(sorted(value.items())))


def test_dumps_is_utf8_not_ascii_escaped() -> None:
    assert codec.dumps({"b": "\u00e9", "a": "\U0001f600"}) == '{"a":"\U0001f600","b":"\u00e9"}'.encode()


def test_seal_is_deterministic() -> None:
    payload = codec.dumps({"messages": ["hello"] * 200})
    assert codec.seal(payload) == codec.seal(payload)
    assert codec.seal(payload, compress=False) == codec.seal(payload, compress=False)


def test_small_or_incompressible_payloads_stay_raw() -> None:
    small = codec.dumps({"a": 1})
    assert codec.seal(small)[3:4] == b"j"
    noise = codec.dumps(random.Random(7).randbytes(4000).hex())  # hex digits: compress poorly
    blob = codec.seal(noise)
    assert codec.unseal(blob, KEY) == noise
    assert len(blob) <= len(noise) + 36


# --- corruption ----------------------------------------------------------------------------------------


def _sample_blobs() -> list[bytes]:
    payload = codec.dumps({"messages": [f"hello world {i}" for i in range(150)], "x": 1.5})
    return [codec.seal(payload, compress=False), codec.seal(payload, compress=True)]


RAW_BLOB, ZSTD_BLOB = _sample_blobs()


def test_sample_blobs_use_both_codecs() -> None:
    assert RAW_BLOB[3:4] == b"j" and ZSTD_BLOB[3:4] == b"z"


@pytest.mark.parametrize("flip", [0x01, 0x80, 0xFF, 0x10, 0x5A])
def test_any_flipped_byte_in_a_raw_blob_is_caught(flip: int) -> None:
    for position in range(len(RAW_BLOB)):
        damaged = bytearray(RAW_BLOB)
        damaged[position] ^= flip
        with pytest.raises(CorruptCheckpoint) as caught:
            codec.unseal(bytes(damaged), KEY)
        assert caught.value.key == KEY and KEY in str(caught.value), position


def test_any_flipped_byte_in_a_compressed_blob_never_yields_wrong_bytes() -> None:
    """Every single-byte change raises CorruptCheckpoint naming the key, or (for the few bits zstd ignores)
    returns exactly the original payload; never other bytes, never another exception."""
    original = codec.unseal(ZSTD_BLOB, KEY)
    caught = 0
    for position in range(len(ZSTD_BLOB)):
        for flip in range(1, 256):
            damaged = bytearray(ZSTD_BLOB)
            damaged[position] ^= flip
            try:
                payload = codec.unseal(bytes(damaged), KEY)
            except CorruptCheckpoint as exc:
                assert exc.key == KEY and KEY in str(exc)
                caught += 1
            else:
                assert payload == original, (position, flip)
    assert caught > 0.99 * len(ZSTD_BLOB) * 255


def test_flipped_byte_in_the_frame_size_field_is_corruption_not_memory_error() -> None:
    # Byte 40 is the zstd frame header descriptor: its top bits choose the width of the content-size field,
    # so a flip there can make the frame claim exabytes. That must be reported as corruption.
    for flip in (0x80, 0x81, 0x84, 0x85, 0x90, 0xC0):
        damaged = bytearray(ZSTD_BLOB)
        damaged[40] ^= flip
        with pytest.raises(CorruptCheckpoint):
            codec.unseal(bytes(damaged), KEY)


@pytest.mark.parametrize("blob", [RAW_BLOB, ZSTD_BLOB], ids=["raw", "zstd"])
def test_truncated_blob_is_caught(blob: bytes) -> None:
    for length in range(len(blob)):
        with pytest.raises(CorruptCheckpoint) as caught:
            codec.unseal(blob[:length], KEY)
        assert caught.value.key == KEY


@pytest.mark.parametrize("blob", [RAW_BLOB, ZSTD_BLOB], ids=["raw", "zstd"])
def test_extended_blob_is_caught(blob: bytes) -> None:
    for tail in (b"\x00", b"garbage", blob[-10:]):
        with pytest.raises(CorruptCheckpoint):
            codec.unseal(blob + tail, KEY)


def test_non_blobs_and_undecodable_payloads_are_corruption() -> None:
    for junk in (b"", b"SP", b'{"a": 1}', b"\x00" * 100, b"SP\x02j" + bytes(32) + b"{}"):
        with pytest.raises(CorruptCheckpoint):
            codec.unseal(junk, KEY)
    sealed_text = codec.seal(b"not json at all", compress=False)
    assert codec.unseal(sealed_text, KEY) == b"not json at all"
    with pytest.raises(CorruptCheckpoint, match="not JSON") as caught:
        codec.load_sealed(sealed_text, KEY)
    assert caught.value.key == KEY


def test_corrupt_checkpoint_says_what_to_do() -> None:
    with pytest.raises(CorruptCheckpoint) as caught:
        codec.unseal(b"xx", "commits/s1/000000000003")
    message = str(caught.value)
    assert "commits/s1/000000000003" in message and "fsck" in message
    assert isinstance(caught.value, SafepointError)


# --- values with no JSON form ----------------------------------------------------------------------------


def _bad_path(value: object) -> str:
    with pytest.raises(NotSerializable) as caught:
        codec.dumps(value)
    assert caught.value.path in str(caught.value)
    assert isinstance(caught.value, SafepointError) and isinstance(caught.value, TypeError)
    return caught.value.path


def test_not_serializable_names_the_exact_path() -> None:
    state = {"data": {"tools": [1, 2, 3, {"callback": lambda: 0}]}}
    path = _bad_path(state)
    assert path == "state.data.tools[3].callback"
    with pytest.raises(NotSerializable) as caught:
        codec.dumps(state)
    assert caught.value.value_type == "function"


def test_not_serializable_path_uses_brackets_for_odd_keys() -> None:
    assert _bad_path({"my key": {"ok": 1, "x-y": [object()]}}) == "state['my key']['x-y'][0]"
    assert _bad_path([{"a": 1}, {"b": {1, 2}}]) == "state[1].b"


def test_not_serializable_names_the_root_given() -> None:
    with pytest.raises(NotSerializable) as caught:
        codec.dumps({"x": b"bytes"}, root="meta")
    assert caught.value.path == "meta.x"


def test_non_string_dict_keys_are_named() -> None:
    path = _bad_path({"data": {"counts": {1: "one"}}})
    assert path == "state.data.counts[1]"
    with pytest.raises(NotSerializable, match="keys must be strings"):
        codec.dumps({"data": {"counts": {1: "one"}}})
    assert _bad_path({"a": {None: 1}}) == "state.a[None]"


@pytest.mark.parametrize("number", [2**64, -(2**63) - 1, 10**30])
def test_integers_beyond_64_bits_are_named(number: int) -> None:
    value = {"data": {"ids": [1, number]}}
    assert _bad_path(value) == "state.data.ids[1]"
    with pytest.raises(NotSerializable, match="64 bits"):
        codec.dumps(value)


def test_self_referencing_value_is_not_serializable() -> None:
    loop: dict[str, object] = {"a": 1}
    loop["self"] = loop
    path = _bad_path({"data": loop})
    assert path.startswith("state.data")
