"""Hypothesis strategies for JSON-like values, shared by the codec, tree and delta tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

# Every code point orjson can encode: astral ones included, lone surrogates (category Cs) excluded.
json_text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=40)
json_keys = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=12)
json_ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)
json_floats = st.floats(allow_nan=False, allow_infinity=False)

json_scalars = st.none() | st.booleans() | json_ints | json_floats | json_text


def json_values(scalars: st.SearchStrategy[Any] = json_scalars, max_leaves: int = 60) -> st.SearchStrategy[Any]:
    """Nested dicts and lists of `scalars`."""
    return st.recursive(
        scalars,
        lambda children: st.lists(children, max_size=8) | st.dictionaries(json_keys, children, max_size=8),
        max_leaves=max_leaves,
    )


# Scalars no two of which compare equal across types: no 0/1 ints (== False/True), no integral floats
# (2.0 == 2, -0.0 == 0.0). For properties that rely on `==`, which conflates those.
distinct_scalars = (
    st.none()
    | st.booleans()
    | json_ints.filter(lambda n: n not in (0, 1))
    | json_floats.filter(lambda f: not f.is_integer())
    | json_text
)


def nested(depth: int, leaf: Any) -> Any:
    """`leaf` wrapped in `depth` alternating lists and dicts."""
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {f"k{level}": value}
    return value
