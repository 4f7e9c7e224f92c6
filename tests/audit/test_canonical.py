"""The chain's canonical form: the orjson fast path writes exactly `json.dumps`'s bytes."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agentctl.store.chain import canonical


def reference(row: dict[str, Any]) -> bytes:
    body = {k: v for k, v in row.items() if k != "hash" and v is not None}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
    st.text(alphabet=st.characters(max_codepoint=0x80)),
    st.decimals(allow_nan=False, allow_infinity=False),
)


@settings(deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=12), values, max_size=12))
def test_canonical_is_json_dumps(row: dict[str, Any]) -> None:
    assert canonical(row) == reference(row)


def test_canonical_of_an_audit_row() -> None:
    row = {
        "request_id": "req_1",
        "latency_ms": 1.234,
        "ttfb_ms": 0.00005,  # written with an exponent: the standard library decides
        "model": "gpt-4o-mini\x7f",
        "agent": "bot",
        "stream": False,
        "cost_pico": 2**64 + 1,
        "message": None,
        "hash": "ignored",
    }
    assert canonical(row) == reference(row)
    row.update(ttfb_ms=0.5, model="gpt-4o-mini", cost_pico=12_345)
    assert canonical(row) == reference(row)


def test_a_stored_row_takes_the_orjson_path() -> None:
    # Regression: the appender's rows had SQLAlchemy `quoted_name` keys, which orjson
    # refuses, so every row was hashed by the standard library (10x slower).
    from agentctl.store.chain import _orjson_canonical
    from agentctl.store.sql import _full_row

    row = _full_row({"request_id": "req_1", "kind": "request", "agent": "bot", "status": 200})
    row.update(id=1, chain="main", prev_hash="")
    assert {type(key) for key in row} == {str}
    body = {k: v for k, v in row.items() if v is not None and k != "hash"}
    assert _orjson_canonical(body) == reference(row)


def test_keys_of_a_str_subclass_take_the_orjson_path_too() -> None:
    # Rows read back through SQLAlchemy (audit verify) have `quoted_name` keys.
    from sqlalchemy.sql.elements import quoted_name

    from agentctl.store.chain import _orjson_canonical

    body = {quoted_name("agent", None): "bot", quoted_name("status", None): 200}
    assert _orjson_canonical(body) == b'{"agent":"bot","status":200}'
    assert canonical(body) == reference(body)
