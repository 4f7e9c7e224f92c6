"""The official openai and anthropic SDKs through a real gateway, with exact metering."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import anthropic
import pytest
from genai_prices import Usage as GPUsage
from genai_prices import calc_price

from agentctl.money import to_pico
from tests.conftest import CANARY
from tests.harness import IDENTITY, GatewayHarness

MSG = [{"role": "user", "content": "tell me three things about the sea"}]


def expected_pico(
    model: str, prompt: int, completion: int, cached: int = 0, reasoning: int = 0
) -> int:
    usage = GPUsage(
        input_tokens=prompt,
        output_tokens=completion,
        cache_read_tokens=cached,
        output_reasoning_tokens=reasoning,
    )
    return to_pico(Decimal(calc_price(usage, model, provider_id="openai").total_price))


async def test_sync_chat_is_metered_exactly(gateway: GatewayHarness) -> None:
    client = gateway.client()
    resp = await asyncio.to_thread(
        client.chat.completions.create, model="gpt-4o-mini", messages=MSG
    )
    assert resp.choices[0].message.content
    [rec] = await gateway.records()
    assert resp._request_id == rec["request_id"]
    assert (rec["agent"], rec["owner"], rec["purpose"]) == ("bot-a", "team-ml", "production")
    assert rec["verification"] == "unverified"
    assert rec["prompt_tokens"] == resp.usage.prompt_tokens
    assert rec["completion_tokens"] == resp.usage.completion_tokens
    assert rec["usage_source"] == "reported"
    assert rec["cost_pico"] == expected_pico(
        "gpt-4o-mini", resp.usage.prompt_tokens, resp.usage.completion_tokens
    )
    assert rec["status"] == 200 and rec["outcome"] == "served"


async def test_upstream_gets_provider_key_and_identity(gateway: GatewayHarness) -> None:
    client = gateway.aclient(key="sk-client-secret")
    await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    seen = gateway.sim.state.requests[-1]
    assert seen.headers["Authorization"] == f"Bearer {CANARY}"
    assert "sk-client-secret" not in json.dumps(dict(seen.headers))
    assert seen.headers["X-Agent-Identity"] == IDENTITY


async def test_identity_header_can_be_stripped(gateway: GatewayHarness) -> None:
    from agentctl.config import IdentitySettings

    await gateway.restart(identity=IdentitySettings(forward_header=False))
    await gateway.aclient().chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert "X-Agent-Identity" not in gateway.sim.state.requests[-1].headers


async def test_cached_and_reasoning_tokens_are_priced_as_subsets(gateway: GatewayHarness) -> None:
    client = gateway.aclient()
    resp = await client.chat.completions.create(
        model="o3-mini",
        messages=MSG,
        extra_headers={"x-sim-cached-tokens": "4", "x-sim-reasoning-tokens": "5"},
    )
    assert resp.usage.prompt_tokens_details.cached_tokens == 4
    assert resp.usage.completion_tokens_details.reasoning_tokens == 5
    [rec] = await gateway.records()
    assert rec["cached_tokens"] == 4 and rec["reasoning_tokens"] == 5
    assert rec["cost_pico"] == expected_pico(
        "o3-mini", resp.usage.prompt_tokens, resp.usage.completion_tokens, cached=4, reasoning=5
    )
    # cached input is cheaper than fresh input, so the subset must lower the price
    assert rec["cost_pico"] < expected_pico(
        "o3-mini", resp.usage.prompt_tokens, resp.usage.completion_tokens
    )


async def test_stream_without_include_usage_is_metered_and_hidden(gateway: GatewayHarness) -> None:
    client = gateway.aclient()
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True)
    chunks = [chunk async for chunk in stream]
    assert all(len(c.choices) == 1 for c in chunks), "client must not see the usage chunk"
    assert all(c.usage is None for c in chunks)
    sent = gateway.sim.state.requests[-1].json
    assert sent["stream_options"] == {"include_usage": True}
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    [rec] = await gateway.records()
    assert rec["usage_source"] == "reported" and rec["stream"]
    assert rec["completion_tokens"] == len(text.split())
    assert rec["cost_pico"] == expected_pico(
        "gpt-4o-mini", rec["prompt_tokens"], rec["completion_tokens"]
    )


async def test_stream_with_include_usage_passes_the_chunk(gateway: GatewayHarness) -> None:
    client = gateway.aclient()
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MSG,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    usage = chunks[-1].usage
    [rec] = await gateway.records()
    assert (rec["prompt_tokens"], rec["completion_tokens"]) == (
        usage.prompt_tokens,
        usage.completion_tokens,
    )
    # Regression: a stream whose first chunk held its last event was recorded before its
    # first byte was timed (ttfb_ms null on most fast streams).
    assert rec["ttfb_ms"] is not None and 0 < rec["ttfb_ms"] <= rec["latency_ms"]


async def test_sync_stream(gateway: GatewayHarness) -> None:
    def run() -> list[str]:
        stream = gateway.client().chat.completions.create(
            model="gpt-4o-mini", messages=MSG, stream=True
        )
        return [c.choices[0].delta.content or "" for c in stream if c.choices]

    parts = await asyncio.to_thread(run)
    assert "".join(parts)
    [rec] = await gateway.records()
    assert rec["usage_source"] == "reported"


async def test_embeddings_completions_and_responses(gateway: GatewayHarness) -> None:
    client = gateway.aclient()
    emb = await client.embeddings.create(model="text-embedding-3-small", input=["a b c", "d e"])
    assert len(emb.data) == 2
    comp = await client.completions.create(model="gpt-3.5-turbo-instruct", prompt="say hi")
    resp = await client.responses.create(model="gpt-4o-mini", input="one two three")
    stream = await client.responses.create(model="gpt-4o-mini", input="one two", stream=True)
    events = [e async for e in stream]
    completed = next(e for e in events if e.type == "response.completed")
    recs = await gateway.records()
    by_path = {r["endpoint"]: r for r in recs}
    assert by_path["/v1/embeddings"]["prompt_tokens"] == emb.usage.prompt_tokens
    assert by_path["/v1/embeddings"]["completion_tokens"] == 0
    assert by_path["/v1/completions"]["completion_tokens"] == comp.usage.completion_tokens
    responses = [r for r in recs if r["endpoint"] == "/v1/responses"]
    assert [r["prompt_tokens"] for r in responses] == [
        resp.usage.input_tokens,
        completed.response.usage.input_tokens,
    ]
    assert all(r["usage_source"] == "reported" for r in recs)
    assert responses[1]["cost_pico"] == expected_pico(
        "gpt-4o-mini",
        completed.response.usage.input_tokens,
        completed.response.usage.output_tokens,
    )


async def test_anthropic_messages_cache_tokens_summed(gateway: GatewayHarness) -> None:
    client = anthropic.AsyncAnthropic(
        base_url=gateway.url,
        api_key="sk-ant-client",
        default_headers={"X-Agent-Identity": IDENTITY},
    )
    headers = {"x-sim-cached-tokens": "3", "x-sim-cache-write-tokens": "2"}
    msg = await client.messages.create(
        model="claude-sonnet-4-5", max_tokens=20, messages=MSG, extra_headers=headers
    )
    async with client.messages.stream(
        model="claude-sonnet-4-5", max_tokens=20, messages=MSG, extra_headers=headers
    ) as stream:
        final = await stream.get_final_message()
    recs = await gateway.records()
    assert len(recs) == 2
    for rec, usage in zip(recs, (msg.usage, final.usage), strict=True):
        total_in = (
            usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens
        )
        assert rec["prompt_tokens"] == total_in
        assert rec["cached_tokens"] == 3 and rec["cache_write_tokens"] == 2
        assert rec["completion_tokens"] == usage.output_tokens
        gp = GPUsage(
            input_tokens=total_in,
            cache_read_tokens=3,
            cache_write_tokens=2,
            output_tokens=usage.output_tokens,
        )
        price = calc_price(gp, "claude-sonnet-4-5", provider_id="anthropic").total_price
        assert rec["cost_pico"] == to_pico(Decimal(price))


@pytest.mark.parametrize("n", [8])
async def test_concurrent_async_requests_all_audited(gateway: GatewayHarness, n: int) -> None:
    client = gateway.aclient()
    results = await asyncio.gather(
        *(client.chat.completions.create(model="gpt-4o-mini", messages=MSG) for _ in range(n))
    )
    recs = await gateway.records()
    assert sorted(r["request_id"] for r in recs) == sorted(r._request_id for r in results)
