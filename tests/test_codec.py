"""agentctl.codec: orjson's speed, the standard library's answers."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentctl import codec

LONG = re.compile(rb"[0-9]{19}")


@given(st.binary(max_size=200) | st.text('0123456789 ab"{}:,-.e', max_size=120).map(str.encode))
def test_has_long_number_is_the_regex(data: bytes) -> None:
    assert codec.has_long_number(data) is (LONG.search(data) is not None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"n": 1234567890123456789}', 1234567890123456789),  # 19 digits: json keeps it exact
        ('{"n": 123456789012345678901234567890}', 123456789012345678901234567890),
        ('{"n": 123456789012345678}', 123456789012345678),  # 18: orjson's own int
        ('{"n": 1.5e3}', 1500.0),
    ],
)
def test_loads_keeps_numbers_exact(text: str, expected: Any) -> None:
    value = codec.loads(text.encode())["n"]
    assert value == expected and type(value) is type(expected)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(json_values)
def test_loads_equals_json(value: Any) -> None:
    data = json.dumps(value).encode()
    assert codec.loads(data) == json.loads(data)
