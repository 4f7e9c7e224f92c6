"""The anthropic SDK against /v1/messages, and LangChain's ChatOpenAI streaming through
the gateway with its usage metered although it never asks for stream usage."""

from __future__ import annotations

import asyncio
import json
import uuid

import aiohttp
import anthropic
import pytest

from tests.harness import IDENTITY, GatewayHarness

MSG = [{"role": "user", "content": "tell me three things about the sea"}]


def claude(gateway: GatewayHarness, **kw: object) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=gateway.url,
        api_key="sk-ant-client",
        default_headers={"X-Agent-Identity": IDENTITY},
        **kw,  # type: ignore[arg-type]
    )


async def test_anthropic_sync_create_stream_and_retry(gateway: GatewayHarness) -> None:
    def run() -> tuple[anthropic.types.Message, str, anthropic.types.Message, int]:
        client = claude(gateway, max_retries=2)
        msg = client.messages.create(model="claude-sonnet-4-5", max_tokens=30, messages=MSG)
        with client.messages.stream(
            model="claude-sonnet-4-5", max_tokens=30, messages=MSG
        ) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
        retried = client.messages.with_raw_response.create(
            model="claude-haiku-4-5",
            max_tokens=30,
            messages=MSG,
            extra_headers={
                "x-sim-status": "529",  # Anthropic's "overloaded"
                "x-sim-fail-first": "1",
                "x-sim-key": uuid.uuid4().hex,
                "x-sim-retry-after-ms": "20",
            },
        )
        return msg, text, final, retried.retries_taken

    msg, text, final, retries = await asyncio.to_thread(run)
    assert text and retries == 1
    records = await gateway.records()
    served = [r for r in records if r["outcome"] == "served"]
    assert [r["completion_tokens"] for r in served[:2]] == [
        msg.usage.output_tokens,
        final.usage.output_tokens,
    ]
    assert all(r["upstream"] == "sim-anthropic" and r["cost_pico"] > 0 for r in served)
    assert [r["status"] for r in records if r["outcome"] == "upstream_error"] == [529]


async def test_anthropic_sdk_raises_its_own_error_types_on_refusals(
    gateway: GatewayHarness,
) -> None:
    await asyncio.to_thread(
        gateway.store.set_status, "bot-a", "disabled", actor="alice", reason="loop"
    )
    await gateway.gw.refresh()
    client = anthropic.AsyncAnthropic(
        base_url=gateway.url, api_key="k", default_headers={"X-Agent-Identity": IDENTITY}
    )
    with pytest.raises(anthropic.PermissionDeniedError) as caught:
        await client.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=MSG)
    assert caught.value.status_code == 403
    # The body, not str(): anthropic 2.x no longer prints the body in the message.
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"]["code"] == "agent_disabled"
    assert "agents enable bot-a" in caught.value.message
    [rec] = await gateway.records()  # x-should-retry: false, so no retries
    assert rec["rule_id"] == "agent_disabled"


async def test_langchain_chatopenai_stream_is_metered(gateway: GatewayHarness) -> None:
    langchain_openai = pytest.importorskip(
        "langchain_openai", reason="langchain-openai is not installed (it is in the test extra)"
    )
    llm = langchain_openai.ChatOpenAI(
        model="gpt-4o-mini",
        base_url=gateway.base_url,
        api_key="sk-langchain",
        default_headers={"X-Agent-Identity": IDENTITY},
        max_retries=0,
    )
    chunks = [chunk async for chunk in llm.astream("tell me three things about the sea")]
    text = "".join(str(c.content) for c in chunks)
    assert text
    sent = gateway.sim.state.requests[-1]
    assert sent.headers["X-Agent-Identity"] == IDENTITY
    assert sent.json["stream"] is True
    assert sent.json["stream_options"] == {"include_usage": True}  # the gateway asked
    [rec] = await gateway.records()
    assert (rec["agent"], rec["stream"], rec["usage_source"]) == ("bot-a", True, "reported")
    assert rec["completion_tokens"] == len(text.split()) and rec["cost_pico"] > 0
    # LangChain did not ask, so the injected usage chunk never reached it
    assert all(getattr(c, "usage_metadata", None) is None for c in chunks)


async def test_anthropic_stream_cut_short_is_estimated_not_reported(
    gateway: GatewayHarness,
) -> None:
    """Regression: message_start says output_tokens 1; a client leaving after a few deltas
    was audited `reported` with 1 output token. Input stays exact, output is estimated."""
    body = {"model": "claude-sonnet-4-5", "max_tokens": 30, "messages": MSG, "stream": True}
    headers = {"X-Agent-Identity": IDENTITY, "x-sim-chunk-delay-ms": "100"}
    async with aiohttp.ClientSession() as session:
        resp = await session.post(gateway.url + "/v1/messages", json=body, headers=headers)
        assert resp.status == 200
        events = [await resp.content.readuntil(b"\n\n") for _ in range(6)]
        resp.close()
    deltas = sum(b"content_block_delta" in e for e in events)
    start = next(e for e in events if b"message_start" in e)
    input_tokens = json.loads(start.split(b"data: ", 1)[1])["message"]["usage"]["input_tokens"]
    for _ in range(100):
        records = await gateway.records()
        if records:
            break
        await asyncio.sleep(0.05)
    [rec] = records
    assert (rec["outcome"], rec["usage_source"]) == ("disconnected", "estimated")
    assert rec["prompt_tokens"] == input_tokens
    assert deltas >= 2 and rec["completion_tokens"] >= deltas
