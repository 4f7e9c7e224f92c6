"""`Pricer`: the fast linear path agrees with genai-prices to the pico-dollar, model
names are normalised, unknown models are never $0, and overrides win."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from genai_prices import Usage as GPUsage
from genai_prices import calc_price
from hypothesis import given, settings
from hypothesis import strategies as st

from agentctl.config import ModelPrice
from agentctl.money import to_pico
from agentctl.pricing import Pricer, normalise_model, strip_snapshot
from agentctl.usage import Usage

PRICER = Pricer()  # shared on purpose: the rate cache is what the property exercises

MODELS = [
    ("gpt-4o-mini", "openai"),
    ("gpt-4o", "openai"),
    ("gpt-realtime", "openai"),
    ("o3-mini", "openai"),
    ("claude-sonnet-4-5", "anthropic"),
    ("text-embedding-3-small", "openai"),
]


def reference_pico(usage: Usage, model: str, provider: str) -> int:
    gp = GPUsage(
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        cache_read_tokens=usage.cached_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        output_reasoning_tokens=usage.reasoning_tokens,
        input_audio_tokens=usage.input_audio_tokens,
        output_audio_tokens=usage.output_audio_tokens,
        cache_audio_read_tokens=0,
    )
    return to_pico(Decimal(calc_price(gp, model, provider_id=provider).total_price))


@st.composite
def usages(draw: st.DrawFn, model: str) -> Usage:
    """Well-formed: every detail field is a subset of the total it belongs to."""
    big = model.startswith("claude")  # cross the 200k-token tier boundary
    prompt = draw(st.integers(0, 400_000 if big else 50_000))
    if model.startswith("text-embedding"):
        return Usage(prompt_tokens=prompt)
    completion = draw(st.integers(0, 20_000))
    cached = draw(st.integers(0, prompt))
    rest = prompt - cached
    write = draw(st.integers(0, rest)) if model.startswith("claude") else 0
    audio_in = draw(st.integers(0, rest)) if model == "gpt-realtime" else 0
    audio_out = draw(st.integers(0, completion)) if model == "gpt-realtime" else 0
    reasoning = draw(st.integers(0, completion)) if model.startswith("o") else 0
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=cached,
        cache_write_tokens=write,
        reasoning_tokens=reasoning,
        input_audio_tokens=audio_in,
        output_audio_tokens=audio_out,
    )


@pytest.mark.parametrize(("model", "provider"), MODELS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_fast_path_equals_genai_prices(model: str, provider: str, data: st.DataObject) -> None:
    usage = data.draw(usages(model))
    cost = PRICER.cost(usage, model, provider)
    assert cost.pico == reference_pico(usage, model, provider)
    assert cost.source == f"genai-prices:{provider}/{model}"


def test_linear_only_where_prices_are_flat() -> None:
    assert PRICER.rate("gpt-4o-mini", "openai").linear  # type: ignore[union-attr]
    assert not PRICER.rate("claude-sonnet-4-5", "anthropic").linear  # type: ignore[union-attr]


def test_tier_boundary_is_priced_by_genai_prices() -> None:
    small = Usage(prompt_tokens=200_000, completion_tokens=1000)
    large = Usage(prompt_tokens=200_001, completion_tokens=1000)
    for usage in (small, large):
        cost = PRICER.cost(usage, "claude-sonnet-4-5", "anthropic")
        assert cost.pico == reference_pico(usage, "claude-sonnet-4-5", "anthropic")
    per_token_small = PRICER.cost(small, "claude-sonnet-4-5", "anthropic").pico
    per_token_large = PRICER.cost(large, "claude-sonnet-4-5", "anthropic").pico
    assert per_token_large > per_token_small * 3 // 2  # the long-context tier costs more


def test_exact_known_values() -> None:
    # gpt-4o-mini: $0.15 / $0.60 per MTok, cached input $0.075
    usage = Usage(prompt_tokens=1000, completion_tokens=100, cached_tokens=400)
    assert PRICER.cost(usage, "gpt-4o-mini", "openai").pico == (
        600 * 150_000 + 400 * 75_000 + 100 * 600_000
    )
    assert PRICER.unit_prices_pico("gpt-4o-mini", "openai") == (150_000, 600_000)


@pytest.mark.parametrize(
    ("model", "provider", "same_as", "source"),
    [
        ("openai/gpt-4o-mini", "openai", "gpt-4o-mini", "openai/gpt-4o-mini"),
        ("GPT-4o-Mini", "openai", "gpt-4o-mini", "openai/gpt-4o-mini"),
        (" gpt-4o-mini ", "openai", "gpt-4o-mini", "openai/gpt-4o-mini"),
        ("gpt-4o-mini-2099-01-01", "openai", "gpt-4o-mini", "openai/gpt-4o-mini"),
        ("o3-mini-20990101", "openai", "o3-mini", "openai/o3-mini"),
        ("anthropic/claude-sonnet-4-5@20990101", "anthropic", "claude-sonnet-4-5", None),
        # a dated name genai-prices knows keeps its own (different) price
        ("gpt-4o-2024-05-13", "openai", "gpt-4o-2024-05-13", "openai/gpt-4o-2024-05-13"),
    ],
)
def test_name_normalisation(model: str, provider: str, same_as: str, source: str | None) -> None:
    usage = Usage(prompt_tokens=12_345, completion_tokens=678)
    cost = PRICER.cost(usage, model, provider)
    assert cost.pico == reference_pico(usage, same_as, provider)
    if source:
        assert cost.source == f"genai-prices:{source}"


def test_dated_snapshot_with_its_own_price_is_not_stripped() -> None:
    usage = Usage(prompt_tokens=1_000_000)
    dated = PRICER.cost(usage, "gpt-4o-2024-05-13", "openai").pico
    current = PRICER.cost(usage, "gpt-4o", "openai").pico
    assert (dated, current) == (5_000_000_000_000, 2_500_000_000_000)


def test_normalise_helpers() -> None:
    assert normalise_model("OpenAI/GPT-4o") == "gpt-4o"
    assert normalise_model("ft:gpt-4o-mini:org/x") == "ft:gpt-4o-mini:org/x"
    assert strip_snapshot("gpt-4o-2024-08-06") == "gpt-4o"
    assert strip_snapshot("claude-3@20240229") == "claude-3"
    assert strip_snapshot("gpt-4o") == "gpt-4o"


def test_provider_guessed_when_configured_provider_lacks_the_model() -> None:
    usage = Usage(prompt_tokens=1000, completion_tokens=10)
    cost = PRICER.cost(usage, "claude-sonnet-4-5", "openai")
    assert cost.pico == reference_pico(usage, "claude-sonnet-4-5", "anthropic")
    assert cost.source == "genai-prices:anthropic/claude-sonnet-4-5 (provider guessed)"


@pytest.mark.parametrize("model", ["my-local-llama", "gpt-99-ultra", ""])
def test_unknown_model_is_unpriced_not_zero(model: str) -> None:
    cost = PRICER.cost(Usage(prompt_tokens=10, completion_tokens=10), model, "openai")
    assert (cost.pico, cost.source, cost.priced) == (None, "unpriced", False)
    assert PRICER.unit_prices_pico(model, "openai") is None


def test_overrides_exact_glob_and_precedence() -> None:
    pricer = Pricer(
        {
            "My-Model": ModelPrice(
                input_per_mtok="1", output_per_mtok="2", cached_input_per_mtok="0.5"
            ),
            "local-*": ModelPrice(input_per_mtok="0.0000015", output_per_mtok="0"),
            "gpt-4o-mini": ModelPrice(
                input_per_mtok="10", output_per_mtok="20", cache_write_per_mtok="12.5"
            ),
        }
    )
    usage = Usage(prompt_tokens=1000, completion_tokens=100, cached_tokens=200)
    # 800 fresh * $1 + 200 cached * $0.5 + 100 out * $2, per MTok
    assert pricer.cost(usage, "my-model", "openai") == pricer.cost(usage, "MY-MODEL", "x")
    assert pricer.cost(usage, "my-model", "openai").pico == 1_100_000_000
    assert pricer.cost(usage, "my-model", "openai").source == "override:my-model"
    # an override beats genai-prices; no cached price means cached input costs full price
    mini = pricer.cost(usage, "gpt-4o-mini", "openai")
    assert (mini.pico, mini.source) == (12_000_000_000, "override:gpt-4o-mini")
    written = Usage(prompt_tokens=1000, cache_write_tokens=100)
    assert pricer.cost(written, "gpt-4o-mini", "openai").pico == 900 * 10_000_000 + 100 * 12_500_000
    # 1.5 pico-dollars per token: exact in Decimal, rounded up for reservations only
    local = pricer.cost(Usage(prompt_tokens=3), "local-llama-7b", "openai")
    assert local.pico == to_pico(Decimal("0.0000045") / 1_000_000) == 4  # 4.5 -> half-even
    assert pricer.unit_prices_pico("local-llama-7b", "openai") == (2, 0)


def test_whole_pico_rates_take_the_integer_path() -> None:
    pricer = Pricer({"half": ModelPrice(input_per_mtok="0.0000015", output_per_mtok="0")})
    rate = pricer.rate("gpt-4o-mini", "openai")
    assert rate is not None and rate.whole_pico is not None
    usage = Usage(prompt_tokens=1234, completion_tokens=567, cached_tokens=89)
    usd = rate.usd(usage)
    assert usd is not None and rate.pico(usage) == to_pico(usd)
    half = pricer.rate("half", "x")
    assert half is not None and half.whole_pico is None  # 1.5 pico-dollars: Decimal path
    # without `when`, today's UTC rate (the day is cached, not recomputed per call)
    assert pricer.rate("gpt-4o-mini", "openai") is pricer.rate(
        "gpt-4o-mini", "openai", datetime.now(UTC)
    )


def test_rates_are_cached_per_day() -> None:
    pricer = Pricer()
    day1 = datetime(2025, 6, 1, 12, tzinfo=UTC)
    rate = pricer.rate("gpt-4o-mini", "openai", day1)
    assert pricer.rate("gpt-4o-mini", "openai", day1.replace(hour=23)) is rate
    assert pricer.rate("gpt-4o-mini", "openai", datetime(2025, 6, 2, tzinfo=UTC)) is not rate


FIRST_PARTY = ("openai", "anthropic", "google", "mistral", "deepseek", "x-ai", "cohere")


def test_every_first_party_model_matches_genai_prices() -> None:
    """Every model genai-prices lists for these providers, at a mixed usage."""
    from genai_prices import data

    usage = Usage(prompt_tokens=1234, completion_tokens=567, cached_tokens=100)
    checked = 0
    for provider in data.providers:
        if provider.id not in FIRST_PARTY:
            continue
        for model in provider.models:
            try:
                expected = reference_pico(usage, model.id, provider.id)
            except (LookupError, ValueError):
                continue  # needs a usage shape this test does not produce
            assert PRICER.cost(usage, model.id, provider.id).pico == expected, model.id
            checked += 1
    assert checked > 200


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("groq", "openai/gpt-oss-120b"),
        ("together", "openai/gpt-oss-120b"),
        ("together", "togethercomputer/GPT-JT-Moderation-6B"),
    ],
)
def test_namespaced_model_ids_keep_their_provider_price(provider: str, model: str) -> None:
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=1_000_000)
    cost = PRICER.cost(usage, model, provider)
    assert cost.pico == reference_pico(usage, model, provider)
    assert cost.pico and cost.pico > 0


@pytest.mark.parametrize("tokens", [100, 1_000_000])
def test_per_request_fee_is_charged_once(tokens: int) -> None:
    usage = Usage(prompt_tokens=tokens, completion_tokens=tokens)
    assert PRICER.cost(usage, "sonar", "perplexity").pico == reference_pico(
        usage, "sonar", "perplexity"
    )
