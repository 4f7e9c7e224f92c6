"""Anthropic upstreams for /v1/messages through a pool, with the anthropic SDK: each
member gets the provider key the way it is configured (x-api-key or bearer), the
client's key never, and an overloaded member (529) falls back, charged once."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import anthropic
import pytest

from agentctl.config import Pool, Upstream
from agentctl.pricing import Pricer
from agentctl.simulator import RunningSimulator, start_simulator
from agentctl.usage import Usage
from tests.conftest import CANARY
from tests.harness import IDENTITY, GatewayHarness
from tests.routing.support import member

MSG = [{"role": "user", "content": "name three rivers"}]


@pytest.fixture
async def first() -> AsyncIterator[RunningSimulator]:
    simulator = await start_simulator()
    try:
        yield simulator
    finally:
        await simulator.close()


def claude_member(sim: RunningSimulator, name: str, auth: str, weight: int = 1) -> Upstream:
    return member(
        name,
        sim.openai_url,
        models=("claude-*",),
        provider="anthropic",
        api="anthropic",
        auth=auth,
        weight=weight,  # 0: a backup, so every request tries claude-a first
    )


async def test_messages_pool_with_per_upstream_auth_and_fallback(
    gateway: GatewayHarness, first: RunningSimulator
) -> None:
    second = gateway.sim
    assert second is not None
    first.config.status = 529
    members = (
        claude_member(first, "claude-a", "x-api-key"),
        claude_member(second, "claude-b", "bearer", weight=0),
    )
    pool = Pool(name="claude", models=("claude-*",), upstreams=("claude-a", "claude-b"))
    await gateway.restart(upstreams=members, pools=(pool,))
    client = anthropic.AsyncAnthropic(
        base_url=gateway.url,
        api_key="sk-ant-client",
        default_headers={"X-Agent-Identity": IDENTITY},
        max_retries=0,
    )
    msg = await client.messages.create(model="claude-sonnet-4-5", max_tokens=30, messages=MSG)
    assert msg.type == "message" and msg.usage.output_tokens > 0
    async with client.messages.stream(
        model="claude-sonnet-4-5", max_tokens=30, messages=MSG
    ) as stream:
        text = "".join([chunk async for chunk in stream.text_stream])
    assert text

    sent_a = first.state.requests
    sent_b = second.state.requests
    assert len(sent_a) == 2 and len(sent_b) == 2
    for req in sent_a:
        assert req.headers.get("x-api-key") == CANARY
        assert "authorization" not in req.headers
    for req in sent_b:
        assert req.headers.get("authorization") == f"Bearer {CANARY}"
        assert "x-api-key" not in req.headers
    assert all(req.path == "/v1/messages" for req in [*sent_a, *sent_b])

    records = await gateway.records()
    assert len(records) == 2
    for rec in records:
        assert json.loads(rec["attempts"]) == [
            {"upstream": "claude-a", "status": 529},
            {"upstream": "claude-b", "status": 200},
        ]
        assert (rec["upstream"], rec["outcome"], rec["usage_source"]) == (
            "claude-b",
            "served",
            "reported",
        )
        usage = Usage(
            prompt_tokens=rec["prompt_tokens"], completion_tokens=rec["completion_tokens"]
        )
        price = Pricer().cost(usage, "claude-sonnet-4-5", "anthropic").pico
        assert rec["cost_pico"] == price > 0
