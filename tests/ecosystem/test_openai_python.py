"""The official openai Python SDK through a real gateway: every surface a client uses,
and its retry logic meeting both the provider's 429s and the gateway's own."""

from __future__ import annotations

import asyncio
import uuid

import openai
import pytest

from agentctl.policy import load_text
from agentctl.policy.loader import canonical_json
from tests.harness import GatewayHarness

MSG = [{"role": "user", "content": "tell me three things about the sea"}]


async def apply(gateway: GatewayHarness, text: str) -> None:
    policy = load_text(text)
    await asyncio.to_thread(
        gateway.store.apply_policy,
        policy.version,
        canonical_json(policy.document),
        ["ecosystem.yaml"],
        actor="test",
        reason="test",
    )
    await gateway.gw.refresh()


async def test_sync_client_every_surface(gateway: GatewayHarness) -> None:
    def run() -> dict[str, object]:
        client = gateway.client()
        chat = client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        text = "".join(
            c.choices[0].delta.content or ""
            for c in client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True)
            if c.choices
        )
        emb = client.embeddings.create(model="text-embedding-3-small", input="a b c")
        resp = client.responses.create(model="gpt-4o-mini", input="one two three")
        return {"chat": chat, "text": text, "emb": emb, "resp": resp}

    seen = await asyncio.to_thread(run)
    recs = {r["endpoint"] + (" stream" if r["stream"] else ""): r for r in await gateway.records()}
    chat = seen["chat"]
    assert isinstance(chat, openai.types.chat.ChatCompletion)
    assert recs["/v1/chat/completions"]["request_id"] == chat._request_id
    assert recs["/v1/chat/completions"]["completion_tokens"] == chat.usage.completion_tokens  # type: ignore[union-attr]
    assert recs["/v1/chat/completions stream"]["completion_tokens"] == len(
        str(seen["text"]).split()
    )
    assert recs["/v1/embeddings"]["prompt_tokens"] == seen["emb"].usage.prompt_tokens  # type: ignore[attr-defined]
    assert recs["/v1/responses"]["prompt_tokens"] == seen["resp"].usage.input_tokens  # type: ignore[attr-defined]
    assert all(r["usage_source"] == "reported" for r in recs.values())


async def test_async_streams_chat_and_responses(gateway: GatewayHarness) -> None:
    client = gateway.aclient()
    async with client.chat.completions.stream(model="gpt-4o-mini", messages=MSG) as stream:
        final = await stream.get_final_completion()
    events = [
        e.type
        async for e in await client.responses.create(
            model="gpt-4o-mini", input="one two", stream=True
        )
    ]
    assert final.choices[0].message.content and "response.completed" in events
    recs = await gateway.records()
    assert [r["usage_source"] for r in recs] == ["reported", "reported"]


async def test_provider_429_passes_through_and_the_sdk_retries(gateway: GatewayHarness) -> None:
    client = gateway.aclient(max_retries=2)
    headers = {
        "x-sim-status": "429",
        "x-sim-fail-first": "1",
        "x-sim-key": uuid.uuid4().hex,
        "x-sim-retry-after-ms": "20",
    }
    resp = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MSG, extra_headers=headers
    )
    assert resp.retries_taken == 1
    throttled, served = await gateway.records()
    assert (throttled["status"], throttled["outcome"]) == (429, "upstream_error")
    assert served["outcome"] == "served" and served["request_id"] == resp.request_id


async def test_sdk_retries_a_gateway_rate_limit_after_its_retry_after(
    gateway: GatewayHarness,
) -> None:
    await apply(
        gateway,
        """
apiVersion: agentctl/v1
agents:
  bot-a:
    rate: {rpm: 600, burst: 1}
""",
    )
    client = gateway.aclient(max_retries=3)
    first = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MSG
    )
    second = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MSG
    )
    assert first.retries_taken == 0 and second.retries_taken >= 1
    refused = [r for r in await gateway.records() if r["outcome"] == "refused"]
    assert refused and {r["rule_id"] for r in refused} == {"rate-limit-rpm"}


async def test_sdk_stops_on_an_exhausted_budget(gateway: GatewayHarness) -> None:
    await apply(
        gateway,
        """
apiVersion: agentctl/v1
agents:
  bot-a:
    budgets:
      day: {usd: "0.000000001"}
""",
    )
    client = gateway.aclient(max_retries=3)
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(model="gpt-4o-mini", messages=MSG, max_tokens=16)
    assert caught.value.code == "daily-budget-exceeded"
    assert caught.value.response.headers["x-should-retry"] == "false"
    [rec] = await gateway.records()  # one attempt: the SDK did not retry
    assert rec["rule_id"] == "daily-budget-exceeded"
