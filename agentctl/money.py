"""Exact money: `Decimal` for arithmetic, integer pico-dollars (1e-12 USD) for storage.

Micro-dollars are too coarse: one token of a cheap model costs a fraction of a
micro-dollar (gpt-4o-mini input is $0.15/MTok = 150,000 pico-dollars per token).
Integers keep SQL `SUM()` and Redis `INCRBY` exact; a signed 64-bit integer holds
about 9.2 million dollars, far above any single window or report total here.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

PICO = 10**12
_PICO_D = Decimal(PICO)


_KNOWN: dict[tuple[type, Decimal | int | str], int] = {}  # policy limits, mostly


def to_pico(usd: Decimal | int | str) -> int:
    """USD -> integer pico-dollars (rounded half-even below one pico-dollar)."""
    key = (usd.__class__, usd)  # equal values of one type give equal results
    try:
        return _KNOWN[key]
    except (KeyError, TypeError):  # TypeError: a signalling NaN cannot be hashed
        pass
    pico = int((Decimal(usd) * _PICO_D).to_integral_value(rounding=ROUND_HALF_EVEN))
    if len(_KNOWN) < 4096:
        _KNOWN[key] = pico
    return pico


def from_pico(pico: int) -> Decimal:
    return Decimal(pico) / _PICO_D


def usd_str(pico: int) -> str:
    """A plain decimal string without exponent or trailing zeros ('0' for zero)."""
    value = from_pico(pico)
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"
