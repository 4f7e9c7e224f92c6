"""Exact cost of a request from its real usage: genai-prices plus config overrides.

genai-prices' `calc_price` costs about 150 µs a call, too much for every request.
For a model whose prices are flat (no tiers) cost is linear in the token counts,
so we derive one exact `Decimal` coefficient per usage field from genai-prices
itself (by pricing basis usages once per model, provider and UTC day) and then
price each request with seven multiplications. Tiered models go through
genai-prices directly. A property test checks the fast path against genai-prices
on random usages.

Model names are normalised before lookup: case-folded, an `openai/`-style provider
prefix stripped, then a dated snapshot suffix (`-2024-08-06`) stripped if the dated
name is unknown. An unknown model is never silently $0: `cost()` returns
`pico=None` and the caller records it as `unpriced`.
"""

from __future__ import annotations

import fnmatch
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from genai_prices import Usage as GPUsage
from genai_prices import calc_price
from genai_prices.types import TieredPrices

from agentctl.config import ModelPrice
from agentctl.money import to_pico
from agentctl.usage import Usage

_MTOK = Decimal(1_000_000)
_DATED = re.compile(r"^(.*?)[-@](\d{4}-?\d{2}-?\d{2})$")
_FIELDS = (
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "input_audio_tokens",
    "output_audio_tokens",
)


def normalise_model(model: str) -> str:
    name = model.strip().lower()
    if "/" in name and not name.startswith("ft:"):
        name = name.rsplit("/", 1)[1]
    return name


def strip_snapshot(model: str) -> str:
    match = _DATED.match(model)
    return match.group(1) if match else model


def _gp_usage(u: Usage) -> GPUsage:
    return GPUsage(
        input_tokens=u.prompt_tokens,
        output_tokens=u.completion_tokens,
        cache_read_tokens=u.cached_tokens,
        cache_write_tokens=u.cache_write_tokens,
        output_reasoning_tokens=u.reasoning_tokens,
        input_audio_tokens=u.input_audio_tokens,
        output_audio_tokens=u.output_audio_tokens,
        # Chat usage does not split cached reads by modality; count them as text.
        cache_audio_read_tokens=0,
    )


@dataclass(frozen=True, slots=True)
class Rate:
    """USD per token for each usage field (subset fields carry the *difference*)."""

    coefficients: tuple[Decimal, ...]
    model_price: Any  # genai_prices ModelPrice, for tiered fallback
    linear: bool
    source: str  # "genai-prices:<provider>/<model>" or "override:<pattern>"
    per_request: Decimal  # a fixed fee per request, charged once
    # The same rates in whole pico-dollars (per_request first) when every one is a whole
    # number of them, as list prices are: then `pico` needs no Decimal arithmetic.
    whole_pico: tuple[int, ...] | None = field(init=False, repr=False, compare=False)
    unit_pico: tuple[int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        whole: tuple[int, ...] | None = None
        if self.linear:
            scaled = [Decimal(d) * _PICO for d in (self.per_request, *self.coefficients)]
            if all(v.is_finite() and v == v.to_integral_value() for v in scaled):
                whole = tuple(int(v) for v in scaled)
        object.__setattr__(self, "whole_pico", whole)
        unit = (_ceil_pico(self.input_per_token), _ceil_pico(self.output_per_token))
        object.__setattr__(self, "unit_pico", unit)

    def pico(self, u: Usage) -> int | None:
        """`to_pico(self.usd(u))`: exact pico-dollars, None when unpriceable."""
        whole = self.whole_pico
        if whole is None:
            usd = self.usd(u)
            return None if usd is None else to_pico(usd)
        # Whole pico-dollar rates: integer sums are exact and to_pico would round nothing.
        fee, p_in, p_out, p_cached, p_write, p_reason, p_audio_in, p_audio_out = whole
        return (
            fee
            + p_in * u.prompt_tokens
            + p_out * u.completion_tokens
            + p_cached * u.cached_tokens
            + p_write * u.cache_write_tokens
            + p_reason * u.reasoning_tokens
            + p_audio_in * u.input_audio_tokens
            + p_audio_out * u.output_audio_tokens
        )

    def usd(self, u: Usage) -> Decimal | None:
        """Exact USD, or None when genai-prices cannot price this usage shape."""
        if not self.linear:
            try:
                return Decimal(self.model_price.calc_price(_gp_usage(u))["total_price"])
            except (ValueError, ArithmeticError):
                return None
        total = self.per_request
        for coef, name in zip(self.coefficients, _FIELDS, strict=True):
            count = getattr(u, name)
            if count and coef:
                total += coef * count
        return total

    @property
    def input_per_token(self) -> Decimal:
        return self.coefficients[0]

    @property
    def output_per_token(self) -> Decimal:
        return self.coefficients[1]


def _linear_rate(model_price: Any, source: str) -> Rate:
    tiered = any(isinstance(v, TieredPrices) for v in vars(model_price).values())
    n = 1_000_000

    def price(**kw: int) -> Decimal:
        return Decimal(model_price.calc_price(GPUsage(**kw))["total_price"])

    # A per-request fee (e.g. perplexity sonar) is the price of an empty usage: charged
    # once per request, not folded into the per-token rates.
    fixed = price(input_tokens=0)
    base_in = price(input_tokens=n)
    base_out = price(output_tokens=n)
    coefs = (
        (base_in - fixed) / n,
        (base_out - fixed) / n,
        (price(input_tokens=n, cache_read_tokens=n) - base_in) / n,
        (price(input_tokens=n, cache_write_tokens=n) - base_in) / n,
        (price(output_tokens=n, output_reasoning_tokens=n) - base_out) / n,
        (price(input_tokens=n, input_audio_tokens=n) - base_in) / n,
        (price(output_tokens=n, output_audio_tokens=n) - base_out) / n,
    )
    return Rate(coefs, model_price, not tiered, source, fixed)


def _override_rate(pattern: str, p: ModelPrice) -> Rate:
    inp = Decimal(p.input_per_mtok) / _MTOK
    out = Decimal(p.output_per_mtok) / _MTOK
    cached = Decimal(p.cached_input_per_mtok) / _MTOK - inp if p.cached_input_per_mtok else 0
    write = Decimal(p.cache_write_per_mtok) / _MTOK - inp if p.cache_write_per_mtok else 0
    zero = Decimal(0)
    coefs = (inp, out, Decimal(cached), Decimal(write), zero, zero, zero)
    return Rate(coefs, None, True, f"override:{pattern}", Decimal(0))


@dataclass(frozen=True, slots=True)
class Cost:
    pico: int | None  # None = unpriced
    source: str

    @property
    def priced(self) -> bool:
        return self.pico is not None


class Pricer:
    """Thread-safe; the rate cache is keyed by (model, provider, UTC day)."""

    def __init__(self, overrides: dict[str, ModelPrice] | None = None) -> None:
        self._overrides = {k.lower(): v for k, v in (overrides or {}).items()}
        self._cache: dict[tuple[str, str, date], Rate | None] = {}
        self._lock = threading.Lock()
        self._today = (0.0, 0.0, date.min)  # [start, end) in epoch seconds, UTC date

    def _utc_today(self) -> date:
        now = time.time()
        start, end, day = self._today
        if not start <= now < end:
            start = now - now % 86400  # POSIX days are 86,400 s: a UTC midnight
            day = datetime.fromtimestamp(start, UTC).date()
            self._today = (start, start + 86400, day)
        return day

    def rate(self, model: str, provider: str, when: datetime | None = None) -> Rate | None:
        day = when.date() if when is not None else self._utc_today()
        key = (model, provider, day)
        try:
            return self._cache[key]
        except KeyError:
            pass
        rate = self._lookup(model, provider, when)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = rate
        return rate

    def _lookup(self, model: str, provider: str, when: datetime | None) -> Rate | None:
        name = normalise_model(model)
        full = model.strip().lower()
        for pattern, price in self._overrides.items():
            if any(n == pattern or fnmatch.fnmatchcase(n, pattern) for n in (full, name)):
                return _override_rate(pattern, price)
        # The configured provider first; then genai-prices' guess from the model name
        # (an OpenAI-compatible upstream serving claude-* still costs Anthropic's list
        # price, and a guessed price beats a silent $0). The source says which it was.
        candidates = dict.fromkeys((full, name, strip_snapshot(name)))
        for provider_id in (provider, None):
            for candidate in candidates:
                try:
                    calc = calc_price(
                        GPUsage(input_tokens=0),
                        candidate,
                        provider_id=provider_id,
                        genai_request_timestamp=when,
                    )
                except LookupError:
                    continue
                guessed = "" if provider_id else " (provider guessed)"
                source = f"genai-prices:{calc.provider.id}/{calc.model.id}{guessed}"
                return _linear_rate(calc.model_price, source)
        return None

    def cost(self, usage: Usage, model: str, provider: str, when: datetime | None = None) -> Cost:
        rate = self.rate(model, provider, when)
        pico = rate.pico(usage) if rate is not None else None
        if rate is None or pico is None:
            return Cost(None, "unpriced")
        return Cost(pico, rate.source)

    def unit_prices_pico(self, model: str, provider: str) -> tuple[int, int] | None:
        """(input, output) pico-dollars per token, rounded up: for worst-case reservations."""
        rate = self.rate(model, provider)
        if rate is None:
            return None
        return rate.unit_pico


_PICO = Decimal(10**12)


def _ceil_pico(usd: Decimal) -> int:
    pico = usd * _PICO
    whole = int(pico)
    return whole + (1 if pico > whole else 0)
