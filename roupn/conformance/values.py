"""Hypothesis strategies for JSON values, documents and messages."""

from __future__ import annotations

from hypothesis import strategies as st

__all__ = ["documents", "json_values", "keys", "messages"]

# Small integers and floats make values that ``==`` mixes up with each other and
# with booleans (0, 0.0, False; 1, 1.0, True) common.
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-3, max_value=3)
    | st.sampled_from([0.0, 1.0, -0.5])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.text(max_size=4)
)
keys = st.text(alphabet="abcd", max_size=2)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(keys, children, max_size=4)
    ),
    max_leaves=16,
)
documents = st.dictionaries(keys, json_values, max_size=5)

# Messages as clients send them: objects with any text keys, and any text values.
messages = st.dictionaries(
    st.text(max_size=8),
    st.recursive(
        scalars | st.text(max_size=40),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=12,
    ),
    max_size=6,
)
