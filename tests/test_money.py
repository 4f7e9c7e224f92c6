"""`agentctl.money`: exact conversions between USD decimals and integer pico-dollars."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentctl.money import PICO, from_pico, to_pico, usd_str


@pytest.mark.parametrize(
    ("usd", "pico"),
    [
        ("0", 0),
        ("1", PICO),
        (1, PICO),
        (Decimal("0.15"), 150_000_000_000),
        ("0.00000015", 150_000),  # one gpt-4o-mini input token
        ("0.000000000001", 1),
        ("0.0000000000005", 0),  # half a pico-dollar rounds to even
        ("0.0000000000015", 2),
        ("0.0000000000025", 2),
        ("-0.0000000000015", -2),
        ("1E-6", 1_000_000),
        ("9223372.036854775807", 2**63 - 1),
    ],
)
def test_to_pico(usd: Decimal | int | str, pico: int) -> None:
    assert to_pico(usd) == pico
    assert isinstance(to_pico(usd), int)


@pytest.mark.parametrize(
    ("pico", "text"),
    [
        (0, "0"),
        (1, "0.000000000001"),
        (150_000, "0.00000015"),
        (PICO, "1"),
        (10 * PICO, "10"),
        (1_500_000_000_000, "1.5"),
        (123_456_789_012_345, "123.456789012345"),
        (-150_000, "-0.00000015"),
        (2**63 - 1, "9223372.036854775807"),
    ],
)
def test_usd_str(pico: int, text: str) -> None:
    assert usd_str(pico) == text
    assert "E" not in text and "e" not in text


@settings(deadline=None)
@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_round_trips(pico: int) -> None:
    assert to_pico(from_pico(pico)) == pico
    assert to_pico(usd_str(pico)) == pico
    assert Decimal(usd_str(pico)) == from_pico(pico)


@settings(deadline=None)
@given(st.decimals(min_value=-(10**6), max_value=10**6, places=12, allow_nan=False))
def test_twelve_decimal_places_are_exact(usd: Decimal) -> None:
    assert from_pico(to_pico(usd)) == usd


@settings(deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10**15), max_size=50))
def test_sums_in_pico_match_decimal_sums(picos: list[int]) -> None:
    assert from_pico(sum(picos)) == sum((from_pico(p) for p in picos), Decimal(0))
